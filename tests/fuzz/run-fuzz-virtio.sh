#!/bin/sh
# Builds the virtio fuzz target (fuzz-virtio.c: the virtio-mmio transport and
# the devices behind it) with clang's libFuzzer plus ASan and UBSan, and runs
# it: tests/fuzz/run-fuzz-virtio.sh [SECONDS] [DEVICE] (default 600, all).
# DEVICE (empty, echo, keyboard, tablet, console, blk, net, rng, gpu) pins the
# device, for a campaign per device: binary fuzz-virtio-DEVICE, corpus
# $ORRERY_FUZZ_DIR/corpus-virtio-DEVICE seeded with that device's seeds. Without it
# the first input byte picks the device; the corpus is $ORRERY_FUZZ_DIR/corpus-virtio.
# Crashes are written to $ORRERY_FUZZ_DIR/ as crash-* and make the script fail.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
device=${2:-}
# Corpora grow outside the tree (ORRERY_FUZZ_DIR, default ~/.cache/orrery/fuzz): only seeds are kept in it.
out=${ORRERY_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery/fuzz}
define=
suffix=
if [ -n "$device" ]; then
        n=0
        for name in empty echo keyboard tablet console blk net rng gpu; do
                [ "$name" = "$device" ] && define=-DFUZZ_DEVICE=$n
                n=$((n + 1))
        done
        [ -n "$define" ] || { echo "unknown device: $device" >&2; exit 2; }
        suffix=-$device
fi
corpus=corpus-virtio$suffix
mkdir -p "$out/$corpus"
if [ -n "$device" ]; then
        cp -n "$top"/tests/fuzz/corpus-virtio/"$device"-* "$out/$corpus/" 2>/dev/null || true
else
        cp -n "$top"/tests/fuzz/corpus-virtio/* "$out/$corpus/" 2>/dev/null || true
fi
# The gpu's host memory limit is 16 MiB here, not 128: inputs that create large resources spent most of
# their time in ASan poisoning and unpoisoning them (the limit's checks are the same code).
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -std=gnu11 -pthread \
        $define "-DVIRTIO_GPU_MAX_HOST_BYTES=(16ULL << 20)" -I"$top/lib" -I"$top/emulator" -I"$top/tests/virtio" \
        "$top/tests/fuzz/fuzz-virtio.c" "$top/tests/virtio/guest.c" "$top/tests/virtio/echo.c" \
        "$top/emulator/devices/virtio_mmio.c" "$top/emulator/devices/virtqueue.c" \
        "$top/emulator/devices/virtio_input.c" "$top/emulator/devices/virtio_console.c" \
        "$top/emulator/devices/virtio_blk.c" "$top/emulator/devices/virtio_net.c" \
        "$top/emulator/devices/virtio_rng.c" "$top/emulator/devices/virtio_gpu.c" "$top/emulator/devices/state.c" \
        "$top/emulator/block/image.c" "$top/emulator/block/workers.c" \
        "$top/emulator/machine/physmem.c" "$top/emulator/machine/fdt.c" "$top/lib/log.c" -lfdt \
        -o "$out/fuzz-virtio$suffix"
cd "$out"
# A smaller quarantine than ASan's 256 MB: devices and buffers allocated per
# input then reuse warm memory instead of faulting in fresh pages (2-3 times
# the executions per second). A use after free is still caught while fewer
# than 16 MB have been freed since, which covers one input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
exec ./fuzz-virtio$suffix -max_total_time="$secs" ${ORRERY_FUZZ_ARGS:-} -max_len=4096 -print_final_stats=1 -rss_limit_mb=4096 \
        -artifact_prefix="$out/" "$corpus"
