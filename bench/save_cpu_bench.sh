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
. "$(dirname "$0")/full-guest.sh"
n=0
for build in "$@"; do
        n=$((n + 1))
        name=save$n
        start_full_guest "$build" $name
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
        stop_guest
done
