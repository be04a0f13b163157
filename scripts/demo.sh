#!/usr/bin/env bash
# The README's first command: from a fresh machine to sample jobs completed.
# Installs what is missing, builds the worker and the guests, starts a
# private PostgreSQL when DATABASE_URL is unset, migrates, registers the
# example guests, enqueues sample jobs with plain SQL, runs
# `hl-worker --concurrency 8` until they are done, and prints their results.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -f /usr/include/postgresql/libpq-fe.h ] || need+=(libpq-dev)
command -v psql >/dev/null || need+=(postgresql-client)
# The example guests built through Wasm.
command -v wasm2c >/dev/null || need+=(wabt)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || need+=(libclang-rt-dev-wasm32)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "demo.sh: please install: ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q "${need[@]}"
fi
export PATH="/opt/swift/usr/bin:$PATH"

echo "== building the worker and the guests"
swift build -c release --product hl-worker
guests/build.sh
worker=.build/release/hl-worker

if [ -z "${DATABASE_URL:-}" ]; then
    echo "== starting a private PostgreSQL (data in .hl/pg)"
    export "$(scripts/pg.sh start)"
fi

echo "== migrating and registering the example guests"
"$worker" migrate
"$worker" guest add demo guests/build/demo.elf
"$worker" guest add hello_c guests/build/hello_c.elf

echo "== enqueueing sample jobs with SQL"
batch=$(psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 <<'SQL'
WITH inserted AS (
    INSERT INTO hl.jobs (guest, function, args, vm, max_attempts, timeout_ms) VALUES
        ('demo', 'fib', '{"n": 90}', NULL, 3, NULL),
        ('demo', 'sha256', '{"text": "hello, micro-VM"}', NULL, 3, NULL),
        ('demo', 'add', '{"a": 40, "b": 2}', 'recycled', 3, NULL),
        ('demo', 'counter', '{}', 'recycled', 3, NULL),
        ('hello_c', 'add', '{"a": 1, "b": 2}', NULL, 3, NULL),
        ('demo', 'fail', '{"message": "a guest-reported error"}', NULL, 1, NULL),
        ('demo', 'spin', '{}', NULL, 1, 200),
        ('demo', 'no_such_function', '{}', NULL, 3, NULL)
    RETURNING id
)
SELECT min(id) || ' ' || max(id) FROM inserted;
SQL
)
read -r first last <<<"$batch"

echo "== running hl-worker --concurrency 8 until jobs $first..$last are done"
"$worker" --concurrency 8 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    open=$(psql "$DATABASE_URL" -qAt -c \
        "SELECT count(*) FROM hl.jobs WHERE id BETWEEN $first AND $last AND state NOT IN ('completed', 'discarded', 'cancelled')")
    [ "$open" = 0 ] && break
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid" || true
trap - EXIT

echo "== results"
psql "$DATABASE_URL" -P pager=off -c "
SELECT id, guest, function, state, attempt,
       coalesce(result::text, errors -> -1 ->> 'kind' || ': ' || (errors -> -1 ->> 'message')) AS outcome
FROM hl.jobs WHERE id BETWEEN $first AND $last ORDER BY id"
