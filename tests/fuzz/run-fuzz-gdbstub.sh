#!/bin/sh
# Builds the debugger-protocol fuzz target (fuzz-gdbstub.c: orrery-gdbstub's
# packet parser and session on a fake VM) with clang's libFuzzer plus ASan
# and UBSan, and runs it: tests/fuzz/run-fuzz-gdbstub.sh [SECONDS] (default
# 600). The corpus grows in $ORRERY_FUZZ_DIR/corpus-gdbstub (seeded from
# tests/fuzz/corpus-gdbstub); crashes are written to $ORRERY_FUZZ_DIR/ as
# crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
# Corpora grow outside the tree (ORRERY_FUZZ_DIR, default ~/.cache/orrery/fuzz): only seeds are kept in it.
out=${ORRERY_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery/fuzz}
mkdir -p "$out/corpus-gdbstub"
cp -n "$top"/tests/fuzz/corpus-gdbstub/* "$out/corpus-gdbstub/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 \
        -I"$top/lib" -I"$top/services/gdbstub" \
        "$top/tests/fuzz/fuzz-gdbstub.c" "$top/services/gdbstub/rsp.c" "$top/services/gdbstub/session.c" \
        "$top/services/gdbstub/target.c" -o "$out/fuzz-gdbstub"
cd "$out"
# A smaller quarantine than ASan's 256 MB: devices and buffers allocated per
# input then reuse warm memory instead of faulting in fresh pages (2-3 times
# the executions per second). A use after free is still caught while fewer
# than 16 MB have been freed since, which covers one input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
exec ./fuzz-gdbstub -max_total_time="$secs" ${ORRERY_FUZZ_ARGS:-} -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$out/" corpus-gdbstub
