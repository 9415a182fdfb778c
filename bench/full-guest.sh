# Sourced by bench/save_cpu_bench.sh and bench/restore_cpu_bench.sh: a
# private session bus and scratch directory (removed on exit), the CPU time
# of a process, and a 2 GiB default guest with 1843 MiB of its RAM touched.
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
bus_pid=
cleanup() {
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT
# The VMs publish themselves on it and the monitor finds them there.
read -r DBUS_SESSION_BUS_ADDRESS bus_pid < <(dbus-daemon --session --fork --print-address=1 --print-pid=1 | paste -sd' ')
export DBUS_SESSION_BUS_ADDRESS
clk=$(getconf CLK_TCK)
cpu_ms() { awk -v c="$clk" '{ print ($14 + $15) * 1000 / c }' "/proc/$1/stat"; }
wait_text() { until grep -q "$2" "$1"; do sleep 0.05; done; }

# start_full_guest BUILD_DIR NAME: boots it, touches 1843 MiB; sets $pid, its serial input on fd 3.
start_full_guest() {
        mkfifo "$tmp/in-$2"
        "$1/emulator/orrery-vm" --name "$2" --memory 2G --display none --no-config \
                < "$tmp/in-$2" > "$tmp/serial-$2" 2>&1 &
        pid=$!
        exec 3> "$tmp/in-$2"
        wait_text "$tmp/serial-$2" "orrery-guest: ready"
        echo "orrery-guest-probe touch-ram 1843; echo touched-''done" >&3
        wait_text "$tmp/serial-$2" "touched-done"
}

# stop_guest: ends the guest start_full_guest started.
stop_guest() {
        kill "$pid"
        exec 3>&-
        wait "$pid" || true
}

echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); $(date -u +%FT%TZ)"
