#!/bin/sh
# Builds the QGA fuzz target with clang's libFuzzer (plus ASan and UBSan) and
# runs it for a while: tests/fuzz/run-fuzz-qga.sh [SECONDS] (default 600).
# The corpus grows in build-fuzz/corpus-qga (seeded from tests/fuzz/corpus-qga);
# crashes are written to build-fuzz/ as crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
out=$top/build-fuzz
mkdir -p "$out/corpus-qga"
cp -n "$top"/tests/fuzz/corpus-qga/* "$out/corpus-qga/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 \
        -I"$top/services/agent" -I"$top/lib" $(pkg-config --cflags json-c) \
        "$top/tests/fuzz/fuzz-qga.c" "$top/services/agent/qga-framer.c" \
        "$top/lib/base64.c" "$top/services/agent/utf8.c" \
        $(pkg-config --libs json-c) -o "$out/fuzz-qga"
cd "$out"
exec ./fuzz-qga -max_total_time="$secs" -max_len=262144 -print_final_stats=1 \
        -dict="$top/tests/fuzz/qga.dict" -artifact_prefix="$out/" corpus-qga
