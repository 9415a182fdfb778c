#!/bin/sh
# Builds the guest-agent channel fuzz target (fuzz-qga-channel.c: handshake,
# request queue and reply matching of qga-channel.c over a socketpair) with
# clang's libFuzzer plus ASan and UBSan, and runs it:
# tests/fuzz/run-fuzz-qga-channel.sh [SECONDS] (default 600). The corpus
# grows in $ORRERY_FUZZ_DIR/corpus-qga-channel (seeded from
# tests/fuzz/corpus-qga-channel); crashes are written to $ORRERY_FUZZ_DIR/ as
# crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
# Corpora grow outside the tree (ORRERY_FUZZ_DIR, default ~/.cache/orrery/fuzz): only seeds are kept in it.
out=${ORRERY_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery/fuzz}
mkdir -p "$out/corpus-qga-channel"
cp -n "$top"/tests/fuzz/corpus-qga-channel/* "$out/corpus-qga-channel/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 \
        -I"$top/services/agent" -I"$top/services/common" -I"$top/lib" $(pkg-config --cflags json-c libsystemd) \
        "$top/tests/fuzz/fuzz-qga-channel.c" "$top/services/agent/qga-channel.c" \
        "$top/services/agent/qga-framer.c" "$top/services/agent/utf8.c" "$top/lib/log.c" \
        $(pkg-config --libs json-c libsystemd) -o "$out/fuzz-qga-channel"
cd "$out"
# A smaller quarantine than ASan's 256 MB: devices and buffers allocated per
# input then reuse warm memory instead of faulting in fresh pages (2-3 times
# the executions per second). A use after free is still caught while fewer
# than 16 MB have been freed since, which covers one input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
exec ./fuzz-qga-channel -max_total_time="$secs" ${ORRERY_FUZZ_ARGS:-} -max_len=4096 -print_final_stats=1 \
        -dict="$top/tests/fuzz/qga.dict" -artifact_prefix="$out/" corpus-qga-channel
