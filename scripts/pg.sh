#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, kept inside the
# checkout (.hl/pg, git-ignored) on its own port, so it never touches a
# system cluster and can be thrown away with `rm -rf .hl`.
#
#   scripts/pg.sh start   initdb if needed, start, print DATABASE_URL=...
#   scripts/pg.sh stop
#   scripts/pg.sh restart (tests of surviving a server restart use it)
#   scripts/pg.sh url     print DATABASE_URL=... (no start)
#   scripts/pg.sh status
#
# PGPORT_HL overrides the port (default 54329). PostgreSQL refuses to run as
# root, and CI runs as root: then the cluster runs as the system user `hlpg`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${PGPORT_HL:-54329}
run_user=hlpg
db_role=postgres

base="$repo/.hl/pg"

# The cluster's user must be able to reach its directory, and a Unix socket
# path must fit in sun_path (107 bytes). A checkout under /root, or a deeply
# nested one, fails one of these; fall back to a fixed place outside it.
fallback_base() {
    echo "/var/tmp/hl-pg-$(printf '%s' "$repo" | cksum | cut -d' ' -f1)"
}

as_cluster_user() {
    if [ "$(id -u)" = 0 ]; then
        # From /, since the caller's directory may be closed to that user.
        (cd / && runuser -u "$run_user" -- "$@")
    else
        "$@"
    fi
}

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    fi
}

# The server for the cluster, and libpq's headers for building the worker.
install_postgres() {
    if [ "$(id -u)" != 0 ]; then
        echo "pg.sh: PostgreSQL server binaries not found; run as root or: apt-get install -y postgresql libpq-dev" >&2
        exit 1
    fi
    echo "pg.sh: installing postgresql and libpq-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y postgresql libpq-dev >&2 \
        || { apt-get update >&2 && apt-get install -y postgresql libpq-dev >&2; }
}

ensure_run_user() {
    [ "$(id -u)" = 0 ] || return 0
    if ! id -u "$run_user" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$run_user"
    fi
}

choose_base() {
    local sock="$base/run/.s.PGSQL.$port"
    if [ "${#sock}" -gt 100 ]; then
        base=$(fallback_base)
        return
    fi
    if [ "$(id -u)" = 0 ] && id -u "$run_user" >/dev/null 2>&1; then
        mkdir -p "$base"
        chown "$run_user" "$base"
        if ! runuser -u "$run_user" -- test -x "$base"; then
            base=$(fallback_base)
        fi
    fi
}

url() {
    echo "DATABASE_URL=postgres://$db_role@127.0.0.1:$port/postgres"
}

is_running() {
    [ -f "$base/data/PG_VERSION" ] && as_cluster_user "$bin/pg_ctl" -D "$base/data" status >/dev/null 2>&1
}

init_cluster() {
    mkdir -p "$base/data" "$base/run"
    if [ "$(id -u)" = 0 ]; then
        chown -R "$run_user" "$base"
    fi
    chmod 700 "$base/data"
    as_cluster_user "$bin/initdb" -D "$base/data" -U "$db_role" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1 \
        || { cat "$base/initdb.log" >&2; exit 1; }
    local preload=""
    if [ -f "$bin/../lib/pg_stat_statements.so" ]; then
        preload="shared_preload_libraries = 'pg_stat_statements'"
    fi
    # Durability is traded for speed: this cluster holds throwaway data.
    cat >>"$base/data/postgresql.conf" <<EOF

# scripts/pg.sh
listen_addresses = '127.0.0.1'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
$preload
EOF
}

start() {
    bin=$(find_bin)
    if [ -z "$bin" ] || [ ! -f /usr/include/postgresql/libpq-fe.h ]; then
        install_postgres
        bin=$(find_bin)
    fi
    ensure_run_user
    choose_base
    if is_running; then
        # The port it was started on, which PGPORT_HL may no longer name.
        port=$(sed -n 4p "$base/data/postmaster.pid")
        url
        return
    fi
    [ -f "$base/data/PG_VERSION" ] || init_cluster
    mkdir -p "$base/run"
    if [ "$(id -u)" = 0 ]; then
        chown -R "$run_user" "$base"
    fi
    # The port and socket directory go on the command line, not in the
    # config, so PGPORT_HL can change between runs of one cluster.
    as_cluster_user "$bin/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 \
        -o "-p $port -k $base/run" start >/dev/null \
        || { tail -n 30 "$base/server.log" >&2; exit 1; }
    url
}

stop() {
    bin=$(find_bin)
    [ -n "$bin" ] || return 0
    choose_base
    if is_running; then
        as_cluster_user "$bin/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null
    fi
}

status() {
    bin=$(find_bin)
    choose_base
    if [ -n "$bin" ] && is_running; then
        echo "running: $base (port $(sed -n 4p "$base/data/postmaster.pid"))"
    else
        echo "stopped: $base"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart)
        stop
        start
        ;;
    url) url ;;
    status) status ;;
    *)
        echo "usage: $0 start|stop|restart|url|status" >&2
        exit 2
        ;;
esac
