#!/bin/sh
# Builds the orrery-vnc input fuzz target (fuzz-vnc-input.c: services/vnc/server.c's
# key and pointer handling against a fake VM) with clang's libFuzzer plus ASan and
# UBSan, and runs it: tests/fuzz/run-fuzz-vnc-input.sh [SECONDS] (default 600).
# The corpus grows in build-fuzz/corpus-vnc-input (seeded from tests/fuzz/corpus-vnc-input);
# crashes are written to build-fuzz/ as crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
out=$top/build-fuzz
mkdir -p "$out/corpus-vnc-input"
cp -n "$top"/tests/fuzz/corpus-vnc-input/* "$out/corpus-vnc-input/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 \
        -I"$top/lib" -I"$top/services/common" -I"$top/services/vnc" \
        "$top/tests/fuzz/fuzz-vnc-input.c" "$top/services/vnc/keymap.c" "$top/services/vnc/listen.c" \
        "$top/services/vnc/guard.c" "$top/services/vnc/placeholder.c" "$top/lib/log.c" \
        $(pkg-config --cflags --libs libvncserver xkbcommon libsystemd) \
        -o "$out/fuzz-vnc-input"
cd "$out"
exec ./fuzz-vnc-input -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$out/" corpus-vnc-input
