#!/bin/sh
# Builds the orrery-vnc input fuzz target (fuzz-vnc-input.c: services/vnc/server.c's
# key and pointer handling against a fake VM) with clang's libFuzzer plus ASan and
# UBSan, and runs it: tests/fuzz/run-fuzz-vnc-input.sh [SECONDS] (default 600).
# The corpus grows in $ORRERY_FUZZ_DIR/corpus-vnc-input (seeded from tests/fuzz/corpus-vnc-input);
# crashes are written to $ORRERY_FUZZ_DIR/ as crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
# Corpora grow outside the tree (ORRERY_FUZZ_DIR, default ~/.cache/orrery/fuzz): only seeds are kept in it.
out=${ORRERY_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery/fuzz}
mkdir -p "$out/corpus-vnc-input"
cp -n "$top"/tests/fuzz/corpus-vnc-input/* "$out/corpus-vnc-input/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 \
        -I"$top/lib" -I"$top/services/common" -I"$top/services/vnc" \
        "$top/tests/fuzz/fuzz-vnc-input.c" "$top/services/vnc/keymap.c" "$top/services/vnc/listen.c" \
        "$top/services/vnc/guard.c" "$top/services/vnc/placeholder.c" "$top/lib/log.c" \
        $(pkg-config --cflags --libs libvncserver xkbcommon libsystemd) \
        -o "$out/fuzz-vnc-input"
cd "$out"
# A smaller quarantine than ASan's 256 MB: devices and buffers allocated per
# input then reuse warm memory instead of faulting in fresh pages (2-3 times
# the executions per second). A use after free is still caught while fewer
# than 16 MB have been freed since, which covers one input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
exec ./fuzz-vnc-input -max_total_time="$secs" ${ORRERY_FUZZ_ARGS:-} -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$out/" corpus-vnc-input
