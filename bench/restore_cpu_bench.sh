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
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
bus_pid=
cleanup() {
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT
read -r DBUS_SESSION_BUS_ADDRESS bus_pid < <(dbus-daemon --session --fork --print-address=1 --print-pid=1 | paste -sd' ')
export DBUS_SESSION_BUS_ADDRESS
clk=$(getconf CLK_TCK)
cpu_ms() { awk -v c="$clk" '{ print ($14 + $15) * 1000 / c }' "/proc/$1/stat"; }
wait_text() { until grep -q "$2" "$1"; do sleep 0.05; done; }

echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); $(date -u +%FT%TZ)"
mkfifo "$tmp/in"
"$1/emulator/orrery-vm" --name restsrc --memory 2G --display none --no-config < "$tmp/in" > "$tmp/serial" 2>&1 &
pid=$!
exec 3> "$tmp/in"
wait_text "$tmp/serial" "orrery-guest: ready"
echo "orrery-guest-probe touch-ram 1843; echo touched-''done" >&3
wait_text "$tmp/serial" "touched-done"
"$top/build/services/monitor/orrery-monitor" restsrc -c "savevm-file $tmp/s.save" > /dev/null
kill $pid
exec 3>&-
wait $pid || true
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
