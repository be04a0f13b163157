#!/usr/bin/env bash
# Benchmark (not a test): the same C source (guests/examples/compute) built
# natively (compute) and through wasm32 and wasm2c (compute_wasm), called
# with `hl-worker run --vm recycled` (each call followed by a reset to the
# snapshot). Rounds interleave native and Wasm; each figure is the median
# over rounds of that round's p50 (and p99), then the least single call
# (steadier than any percentile on a machine shared with other work).
#
#   scripts/bench-wasm.sh [ROUNDS]     (default 7)
#
# HL_WORKER names the hl-worker binary; by default .build/release/hl-worker
# if it exists, else .build/debug/hl-worker. Targets (issue 11): memory-heavy
# (sha256 of 1 MiB) ≤ 1.6× native, call-heavy (recursive fib) ≤ 1.2×, and a
# call's overhead (noop) ≤ 20 µs over native.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${1:-7}"
binary="${HL_WORKER:-}"
if [[ -z "$binary" ]]; then
    binary=.build/release/hl-worker
    [[ -x "$binary" ]] || binary=.build/debug/hl-worker
fi
[[ -x "$binary" ]] || { echo "bench-wasm.sh: no hl-worker binary; run swift build -c release" >&2; exit 1; }
guests/build.sh >/dev/null

# p50, p99 and min in µs of REPEAT recycled calls: GUEST FUNCTION ARGS REPEAT
measure() {
    "$binary" run "guests/build/$1.elf" "$2" "$3" --repeat "$4" --vm recycled --log-level error 2>&1 >/dev/null |
        sed -n 's/.*p50 \([0-9.]*\) us, p99 \([0-9.]*\) us, min \([0-9.]*\) us.*/\1 \2 \3/p'
}

# CPU time (user + system, guest time included) per call in µs, from N + 1
# calls less one call, so that process start-up and VM creation cancel out:
# GUEST FUNCTION ARGS N. Steadier than wall time when other work shares the
# cores.
cpu_per_call() {
    local one many
    one="$( { TIMEFORMAT='%3U %3S'; time "$binary" run "guests/build/$1.elf" "$2" "$3" --repeat 1 --vm recycled \
        --log-level error >/dev/null 2>&1; } 2>&1 | awk '{ print $1 + $2 }')"
    many="$( { TIMEFORMAT='%3U %3S'; time "$binary" run "guests/build/$1.elf" "$2" "$3" --repeat "$(( $4 + 1 ))" \
        --vm recycled --log-level error >/dev/null 2>&1; } 2>&1 | awk '{ print $1 + $2 }')"
    awk -v one="$one" -v many="$many" -v n="$4" 'BEGIN { printf "%.1f", (many - one) * 1e6 / n }'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

cases=("fib|{\"n\":30}|20" "sha256|{\"kib\":1024}|20" "noop|{}|2000")
declare -A p50 p99 least cpu
for (( round = 1; round <= rounds; round++ )); do
    for case in "${cases[@]}"; do
        IFS='|' read -r function args repeat <<< "$case"
        for guest in compute compute_wasm; do
            read -r a b c < <(measure "$guest" "$function" "$args" "$repeat")
            p50["$guest/$function"]+="$a "
            p99["$guest/$function"]+="$b "
            least["$guest/$function"]+="$c "
            cpu["$guest/$function"]+="$(cpu_per_call "$guest" "$function" "$args" "$repeat") "
        done
    done
done

echo "hl-worker run --vm recycled, call + reset, $rounds interleaved rounds: medians of per-round p50 (p99), and the least call, in µs ($binary)"
printf '%-8s %-14s %30s %30s %s\n' function args native wasm "wasm vs native (p50; least)"
cpu_lines=""
for case in "${cases[@]}"; do
    IFS='|' read -r function args repeat <<< "$case"
    native50="$(tr ' ' '\n' <<< "${p50[compute/$function]}" | grep . | median)"
    wasm50="$(tr ' ' '\n' <<< "${p50[compute_wasm/$function]}" | grep . | median)"
    native99="$(tr ' ' '\n' <<< "${p99[compute/$function]}" | grep . | median)"
    wasm99="$(tr ' ' '\n' <<< "${p99[compute_wasm/$function]}" | grep . | median)"
    native_least="$(tr ' ' '\n' <<< "${least[compute/$function]}" | grep . | sort -n | head -n 1)"
    wasm_least="$(tr ' ' '\n' <<< "${least[compute_wasm/$function]}" | grep . | sort -n | head -n 1)"
    native_cpu="$(tr ' ' '\n' <<< "${cpu[compute/$function]}" | grep . | median)"
    wasm_cpu="$(tr ' ' '\n' <<< "${cpu[compute_wasm/$function]}" | grep . | median)"
    cpu_lines+="$(printf '%-8s %-14s %12s %12s %s' "$function" "$args" "$native_cpu" "$wasm_cpu" \
        "$(awk -v w="$wasm_cpu" -v n="$native_cpu" -v f="$function" \
            'BEGIN { if (f == "noop") printf "%+.1f us", w - n; else printf "%.2fx", w / n }')")"$'\n'
    if [[ "$function" == noop ]]; then
        versus="$(awk -v w="$wasm50" -v n="$native50" -v wl="$wasm_least" -v nl="$native_least" \
            'BEGIN { printf "%+.1f us; %+.1f us per call (target <= +20)", w - n, wl - nl }')"
    else
        target=1.2
        [[ "$function" == sha256 ]] && target=1.6
        versus="$(awk -v w="$wasm50" -v n="$native50" -v wl="$wasm_least" -v nl="$native_least" -v t="$target" \
            'BEGIN { printf "%.2fx; %.2fx (target <= %sx)", w / n, wl / nl, t }')"
    fi
    printf '%-8s %-14s %9s (%9s) %8s %9s (%9s) %8s %s\n' "$function" "$args" "$native50" "$native99" "$native_least" \
        "$wasm50" "$wasm99" "$wasm_least" "$versus"
done
echo
echo "CPU time per call (call + reset, guest time included), median over rounds, in µs"
printf '%-8s %-14s %12s %12s %s\n' function args native wasm "wasm vs native"
printf '%s' "$cpu_lines"
