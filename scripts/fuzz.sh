#!/usr/bin/env bash
# Fuzzes the parsers a guest controls, with libFuzzer and AddressSanitizer:
# builds the fuzz targets (fuzz/Sources) into .build-fuzz, runs each one for
# SECONDS (default 60) on its committed corpus (fuzz/corpus/<target>), and
# fails if any input crashes a target, trips a sanitizer, breaks one of its
# invariants, runs over 10 s or over 4 GiB.
#
#   scripts/fuzz.sh [SECONDS]      e.g. scripts/fuzz.sh 600 for a longer hunt
#
# New inputs libFuzzer finds go to .build-fuzz/corpus/<target>, not into the
# repository; a crash is written to .build-fuzz/crashes/<target>/. To keep a
# crash as a regression, fix it, then add the file to fuzz/corpus/<target>/
# (swift test replays every corpus: FuzzCorpusTests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="/opt/swift/usr/bin:$PATH"

seconds=${1:-60}
targets=(elf result hostcall)
scratch=.build-fuzz

start=$(date +%s)
for target in "${targets[@]}"; do
    swift build --scratch-path "$scratch" -c release \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING --product "fuzz-$target"
done
bin=$(swift build --scratch-path "$scratch" -c release --show-bin-path)
echo "fuzz build: $(( $(date +%s) - start )) s"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "$scratch/corpus/$target" "$scratch/crashes/$target"
    log="$scratch/fuzz-$target.log"
    echo "fuzz-$target: ${seconds} s"
    # The first folder receives new inputs; the committed corpus is read only.
    if "$bin/fuzz-$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$scratch/crashes/$target/" "$scratch/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
        tail -n 60 "$log"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "fuzz-$target: $status, ${runs:-?} executions (log: $log)"
done
echo "fuzzing took $(( $(date +%s) - start )) s in all"

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]}; crashing inputs are in $scratch/crashes/<target>/;" \
        "replay one with: swift build && .build/debug/fuzz-<target> FILE" >&2
    exit 1
fi
