#!/usr/bin/env bash
# Benchmark (not a test): the same C source (guests/examples/compute) built
# natively (compute) and through wasm32 and wasm2c (compute_wasm), called
# with `hl-worker run --vm recycled` (each call followed by a reset to the
# snapshot). Rounds interleave native and Wasm; each figure is the median
# over rounds of that round's p50 (and p99).
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

# p50 and p99 in µs of REPEAT recycled calls: GUEST FUNCTION ARGS REPEAT
measure() {
    "$binary" run "guests/build/$1.elf" "$2" "$3" --repeat "$4" --vm recycled --log-level error 2>&1 >/dev/null |
        sed -n 's/.*p50 \([0-9.]*\) us, p99 \([0-9.]*\) us.*/\1 \2/p'
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

cases=("fib|{\"n\":30}|5" "sha256|{\"kib\":1024}|5" "noop|{}|2000")
declare -A p50 p99
for (( round = 1; round <= rounds; round++ )); do
    for case in "${cases[@]}"; do
        IFS='|' read -r function args repeat <<< "$case"
        for guest in compute compute_wasm; do
            read -r a b < <(measure "$guest" "$function" "$args" "$repeat")
            p50["$guest/$function"]+="$a "
            p99["$guest/$function"]+="$b "
        done
    done
done

echo "hl-worker run --vm recycled, call + reset, $rounds interleaved rounds, medians of per-round p50 (p99) in µs ($binary)"
printf '%-8s %-16s %22s %22s %s\n' function args native wasm "wasm vs native"
for case in "${cases[@]}"; do
    IFS='|' read -r function args repeat <<< "$case"
    native50="$(tr ' ' '\n' <<< "${p50[compute/$function]}" | grep . | median)"
    wasm50="$(tr ' ' '\n' <<< "${p50[compute_wasm/$function]}" | grep . | median)"
    native99="$(tr ' ' '\n' <<< "${p99[compute/$function]}" | grep . | median)"
    wasm99="$(tr ' ' '\n' <<< "${p99[compute_wasm/$function]}" | grep . | median)"
    if [[ "$function" == noop ]]; then
        versus="$(awk -v w="$wasm50" -v n="$native50" 'BEGIN { printf "+%.1f us per call (target <= 20)", w - n }')"
    else
        target=1.2
        [[ "$function" == sha256 ]] && target=1.6
        versus="$(awk -v w="$wasm50" -v n="$native50" -v t="$target" 'BEGIN { printf "%.2fx (target <= %sx)", w / n, t }')"
    fi
    printf '%-8s %-16s %12s (%7s) %12s (%7s) %s\n' "$function" "$args" "$native50" "$native99" "$wasm50" "$wasm99" "$versus"
done
