#!/bin/sh
# Builds the virtio fuzz target (fuzz-virtio.c: the virtio-mmio transport and
# the echo, input and console devices behind it) with clang's libFuzzer plus
# ASan and UBSan, and runs it: tests/fuzz/run-fuzz-virtio.sh [SECONDS] (default 600).
# The corpus grows in build-fuzz/corpus-virtio (seeded from tests/fuzz/corpus-virtio);
# crashes are written to build-fuzz/ as crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
out=$top/build-fuzz
mkdir -p "$out/corpus-virtio"
cp -n "$top"/tests/fuzz/corpus-virtio/* "$out/corpus-virtio/" 2>/dev/null || true
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 -pthread \
        -I"$top/lib" -I"$top/emulator" -I"$top/tests/virtio" \
        "$top/tests/fuzz/fuzz-virtio.c" "$top/tests/virtio/guest.c" "$top/tests/virtio/echo.c" \
        "$top/emulator/devices/virtio_mmio.c" "$top/emulator/devices/virtqueue.c" \
        "$top/emulator/devices/virtio_input.c" "$top/emulator/devices/virtio_console.c" \
        "$top/emulator/machine/physmem.c" "$top/lib/log.c" \
        -o "$out/fuzz-virtio"
cd "$out"
exec ./fuzz-virtio -max_total_time="$secs" -max_len=4096 -print_final_stats=1 -rss_limit_mb=4096 \
        -artifact_prefix="$out/" corpus-virtio
