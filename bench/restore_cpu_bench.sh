#!/bin/bash
# Restore of a full guest, build against build: one 2 GiB default guest with
# 1843 MiB touched (orrery-guest-probe touch-ram) is saved once, then each
# build restores that file (orrery-vm --restore FILE --restore-paused) in
# turn, ROUNDS times; prints the wall time until its "Restored" line and the
# CPU orrery-vm spent until then (/proc/PID/stat). Results:
# bench/RESULTS-savevm.md.
#
#   bench/restore_cpu_bench.sh ROUNDS BUILD_DIR [BUILD_DIR...]
set -eu
[ $# -ge 2 ] || { echo "usage: $0 ROUNDS BUILD_DIR [BUILD_DIR...]" >&2; exit 2; }
rounds=$1; shift
. "$(dirname "$0")/full-guest.sh"
start_full_guest "$1" restsrc
"$top/build/services/monitor/orrery-monitor" restsrc -c "savevm-file $tmp/s.save" > /dev/null
stop_guest
echo "# stream: $(( $(stat -c %s "$tmp/s.save") >> 20 )) MiB"

for r in $(seq "$rounds"); do
        for build in "$@"; do
                : > "$tmp/log"
                t0=$(date +%s%N)
                "$build/emulator/orrery-vm" --name restdst --memory 2G --display none --no-config --no-bus \
                        --restore "$tmp/s.save" --restore-paused < /dev/null > "$tmp/log" 2>&1 &
                pid=$!
                wait_text "$tmp/log" "Restored VM"
                t1=$(date +%s%N)
                c=$(cpu_ms $pid)
                kill $pid
                wait $pid || true
                echo "$build: round $r: restore $(( (t1 - t0) / 1000000 )) ms wall, $c ms CPU, load $(cut -d' ' -f1 /proc/loadavg)"
        done
done
