#!/bin/sh
# Builds the boot-loader fuzz target (fuzz-boot.c: the kernel Image header,
# the RAM layout from the --bios/--kernel/--initrd sizes, the device tree
# with --append) with clang's libFuzzer plus ASan and UBSan, and runs it:
# tests/fuzz/run-fuzz-boot.sh [SECONDS] (default 600). The corpus grows in
# $ORRERY_FUZZ_DIR/corpus-boot (seeded from tests/fuzz/corpus-boot); crashes are
# written to $ORRERY_FUZZ_DIR/ as crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
# Corpora grow outside the tree (ORRERY_FUZZ_DIR, default ~/.cache/orrery/fuzz): only seeds are kept in it.
out=${ORRERY_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery/fuzz}
mkdir -p "$out/corpus-boot"
cp -n "$top"/tests/fuzz/corpus-boot/* "$out/corpus-boot/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 \
        -I"$top/lib" -I"$top/emulator" \
        "$top/tests/fuzz/fuzz-boot.c" "$top/emulator/machine/boot.c" "$top/emulator/machine/fdt.c" \
        "$top/lib/log.c" -lfdt -o "$out/fuzz-boot"
cd "$out"
# A smaller quarantine than ASan's 256 MB: devices and buffers allocated per
# input then reuse warm memory instead of faulting in fresh pages (2-3 times
# the executions per second). A use after free is still caught while fewer
# than 16 MB have been freed since, which covers one input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
exec ./fuzz-boot -max_total_time="$secs" ${ORRERY_FUZZ_ARGS:-} -max_len=512 -print_final_stats=1 \
        -artifact_prefix="$out/" corpus-boot
