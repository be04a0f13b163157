#!/usr/bin/env bash
# Dashboard benchmark (not a test): 10,000,000 finished jobs and 100,000
# waiting ones in a database of the private cluster (scripts/pg.sh).
#
#   scripts/dashboard-bench/run.sh load      create hl_dash_bench, measure claim+finish
#                                            on an empty history, load the history,
#                                            measure again (same run)
#   scripts/dashboard-bench/run.sh compare   claim+finish on the loaded table and on an
#                                            empty-history copy, interleaved
#   scripts/dashboard-bench/run.sh pages URL time each dashboard page (server-side,
#                                            from its Server-Timing header)
#
# HISTORY_ROWS overrides 10,000,000. Loading is done once: `load` refuses a
# database that exists (drop it to start again).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
eval "export $("$repo/scripts/pg.sh" url)"
db_url="${DATABASE_URL%/*}/hl_dash_bench"
rows=${HISTORY_ROWS:-10000000}
slice=500000
rounds=${ROUNDS:-5}

claim_finish() {
    # Medians of $rounds pgbench runs of $PAIRS (default 300) claim+finish pairs, one client.
    local label=$1
    for r in $(seq "$rounds"); do
        "$bin/pgbench" -n -c 1 -t ${PAIRS:-300} -f "$here/claim_finish.sql" "$db_url" 2>/dev/null \
            | awk -v l="$label" '/latency average/ {print l, $4}'
        # Put back what was claimed so every round sees 100,000 waiting.
        psql -q "$db_url" -c "DELETE FROM hl.jobs WHERE attempted_by = 'bench-worker' AND state = 'completed' AND args ? 'a';" \
             -f "$here/load_waiting_top_up.sql" >/dev/null
    done | sort -k2 -n | awk '{v[NR]=$2; l=$1} END {printf "%s claim+finish latency ms: median %s of %d runs (min %s, max %s)\n", l, v[int((NR+1)/2)], NR, v[1], v[NR]}'
}

case "${1:-}" in
load)
    psql -q "${DATABASE_URL}" -c "CREATE DATABASE hl_dash_bench" >/dev/null
    for f in "$repo"/migrations/*.sql; do psql -q -v ON_ERROR_STOP=1 "$db_url" -f "$f" >/dev/null; done
    psql -q "$db_url" -f "$here/load_waiting.sql" >/dev/null
    psql -q "$db_url" -c "VACUUM ANALYZE hl.jobs" >/dev/null
    claim_finish before
    start=$(date +%s)
    for ((s = 1; s <= rows; s += slice)); do
        n=$(( rows - s + 1 < slice ? rows - s + 1 : slice ))
        PGOPTIONS="-c synchronous_commit=off" psql -q -v ON_ERROR_STOP=1 -v start="$s" -v rows="$n" -v total="$rows" \
            "$db_url" -f "$here/load_history.sql" >/dev/null
        echo "loaded $((s + n - 1)) of $rows after $(( $(date +%s) - start )) s"
    done
    psql -q "$db_url" -c "VACUUM ANALYZE hl.jobs" >/dev/null
    echo "history loaded and vacuumed in $(( $(date +%s) - start )) s"
    psql -At "$db_url" -c "SELECT state, count(*) FROM hl.jobs GROUP BY 1 ORDER BY 1"
    psql -At "$db_url" -c "SELECT pg_size_pretty(pg_total_relation_size('hl.jobs'))"
    claim_finish after
    ;;
compare)
    # Interleaved rounds on the loaded table and on a second database with
    # the same 100,000 waiting jobs and no history (created once here).
    empty_url="${DATABASE_URL%/*}/hl_dash_bench_empty"
    if ! psql -At "$empty_url" -c "SELECT 1" >/dev/null 2>&1; then
        psql -q "${DATABASE_URL}" -c "CREATE DATABASE hl_dash_bench_empty" >/dev/null
        for f in "$repo"/migrations/*.sql; do psql -q -v ON_ERROR_STOP=1 "$empty_url" -f "$f" >/dev/null; done
        psql -q "$empty_url" -f "$here/load_waiting.sql" >/dev/null
        psql -q "$empty_url" -c "VACUUM ANALYZE hl.jobs" >/dev/null
    fi
    full_url=$db_url
    for r in $(seq "$rounds"); do
        for which in empty full; do
            [ "$which" = empty ] && db_url=$empty_url || db_url=$full_url
            rounds=1 claim_finish "$which" | awk -v w="$which" '{print w, $6}'
        done
    done | awk '{v[$1]=v[$1] " " $2} END {for (w in v) print w, v[w]}' | while read -r which values; do
        sorted=$(tr ' ' '\n' <<<"$values" | sort -n | tr '\n' ' ')
        n=$(wc -w <<<"$sorted")
        echo "$which history: claim+finish ms per pair, $n interleaved runs: $sorted(median $(awk -v n="$n" '{print $(int((n+1)/2))}' <<<"$sorted"))"
    done
    ;;
pages)
    base=${2:?dashboard URL, e.g. http://127.0.0.1:8080}
    for page in / /jobs "/jobs?state=discarded" "/jobs?queue=email&state=completed" "/jobs?guest=pdf" \
                "/jobs?state=available" "/jobs/$(psql -At "$db_url" -c 'SELECT max(id) / 2 FROM hl.jobs')" /guests /workers; do
        for i in $(seq 21); do
            curl -s -o /dev/null -D - "$base$page" | tr -d '\r' | awk -F'dur=' '/^[Ss]erver-[Tt]iming/ {print $2}'
        done | sort -n | awk -v p="$page" '{v[NR]=$1} END {printf "%-40s p50 %6.1f ms  p90 %6.1f ms  max %6.1f ms  (%d requests)\n", p, v[int((NR+1)/2)], v[int(NR*0.9)], v[NR], NR}'
    done
    ;;
*)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
