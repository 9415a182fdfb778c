#!/bin/sh
# A longer differential run of orrery-vm's CPU against QEMU than the 'difftest'
# test (which runs seeds 1..64 of 1000 instructions): by default 2000 seeds of
# 3000 instructions, from seed 1000 on so that it never repeats the test's.
#
#   bench/difftest_soak.sh [FIRST_SEED [LAST_SEED [COUNT]]]
#
# ORRERY_VM selects the emulator (default: build/emulator/orrery-vm). A
# failing seed's program and dumps are kept; rerun one seed with
#   tests/difftest/difftest.py --seeds N:N --count COUNT --no-priv --keep
set -eu
here=$(dirname "$0")
first=${1:-1000}
last=${2:-2999}
count=${3:-3000}
start=$(date +%s)
status=0
python3 "$here/../tests/difftest/difftest.py" --seeds "$first:$last" --count "$count" --jobs "$(nproc)" || status=$?
echo "# seeds $first..$last, $count instructions each: exit $status after $(( $(date +%s) - start )) s on $(nproc) cores"
exit $status
