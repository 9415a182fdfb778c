#!/bin/bash
# Save of a full guest, build against build: a 2 GiB default guest with
# 1843 MiB touched (orrery-guest-probe touch-ram), saved three times with
# orrery-monitor's savevm-file from one running VM per build; prints the
# wall time of each save and the CPU orrery-vm spent on it (/proc/PID/stat).
# Results: bench/RESULTS-savevm.md.
#
#   bench/save_cpu_bench.sh BUILD_DIR [BUILD_DIR...]
set -eu
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [BUILD_DIR...]" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
bus_pid=
cleanup() {
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT
# A private session bus: the VMs publish themselves on it and the monitor finds them there.
read -r DBUS_SESSION_BUS_ADDRESS bus_pid < <(dbus-daemon --session --fork --print-address=1 --print-pid=1 | paste -sd' ')
export DBUS_SESSION_BUS_ADDRESS
clk=$(getconf CLK_TCK)
cpu_ms() { awk -v c="$clk" '{ print ($14 + $15) * 1000 / c }' "/proc/$1/stat"; }
wait_text() { until grep -q "$2" "$1"; do sleep 0.5; done; }

echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); $(date -u +%FT%TZ)"
n=0
for build in "$@"; do
        n=$((n + 1))
        name=save$n
        mkfifo "$tmp/in$n"
        "$build/emulator/orrery-vm" --name $name --memory 2G --display none --no-config \
                < "$tmp/in$n" > "$tmp/serial$n" 2>&1 &
        pid=$!
        exec 3> "$tmp/in$n"
        wait_text "$tmp/serial$n" "orrery-guest: ready"
        echo "orrery-guest-probe touch-ram 1843; echo touched-''done" >&3
        wait_text "$tmp/serial$n" "touched-done"
        for r in 1 2 3; do
                rm -f "$tmp/s.save"
                c0=$(cpu_ms $pid)
                t0=$(date +%s%N)
                "$top/build/services/monitor/orrery-monitor" $name -c "savevm-file $tmp/s.save" > /dev/null
                t1=$(date +%s%N)
                c1=$(cpu_ms $pid)
                echo "$build: save $r: $(( (t1 - t0) / 1000000 )) ms wall, $(echo "$c1 - $c0" | bc) ms CPU," \
                     "$(( $(stat -c %s "$tmp/s.save") >> 20 )) MiB, load $(cut -d' ' -f1 /proc/loadavg)"
        done
        kill $pid
        exec 3>&-
        wait $pid || true
done
