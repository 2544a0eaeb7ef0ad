#!/bin/sh
# Native multipath on a real block device: one LU reached through two TCP proxies (socat) in
# front of tgtd is one /dev/ublkbN with two paths. While fio writes with crc32c verification:
# the proxy of one path is stopped (SIGSTOP: no RST, a pulled cable) -> IO moves within the
# path timeout and fio's verify stays clean; the proxy is resumed -> the path carries IO again
# (failback); the other proxy's connection is killed (a reset) -> IO moves at once. Figures:
# the longest write latency fio saw in each phase.
# needs: tgtd tgtadm dbus-daemon fio socat pkill
# timeout: 300
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:mpath

tgt_two_paths "$IQN"
dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_up
login_two_paths "$IQN"

# fio_end NAME: the fio_start run NAME (lib.sh) must complete clean; LAT_MS is its longest IO.
fio_end() {
    fio_result "$FIO" "$VM_TMP/fio-$1.out"
    check "fio randwrite QD32 with crc32c verify across the $1 completes clean (exit $rc, error ${err:-?})" \
        test "$rc" -eq 0 -a "${err:-1}" = 0
}
path_state() { lunlinkctl --json lus | tr -d ' \n' | grep -o "\"portal\":\"$1\",\"lun\":1,\"state\":\"[a-z-]*\"" | sed 's/.*"state":"//; s/"$//'; }
failed_a() { test "$(path_state "$A")" = failed; }
active_a() { test "$(path_state "$A")" = active; }

# A silent path: SIGSTOP the proxy of A for 12 s while fio runs.
fio_start silence 25
sleep 5
pkill -STOP -f 'TCP-LISTEN:3270'
wait_for 10 failed_a && pass "the silent path shows as failed" || fail "path $A never showed as failed"
lunlinkctl lus
sleep 7
pkill -CONT -f 'TCP-LISTEN:3270'
wait_for 15 active_a && pass "the path is active again after the proxy resumed (failback)" ||
    { lunlinkctl lus; fail "path $A did not come back"; }
fio_end silence
figure "multipath silent_path_longest_io_ms=$LAT_MS"
check "no IO waited more than 5 s across a silent path (longest $LAT_MS ms)" test "$LAT_MS" -le 5000

# Failback carries IO: the writes of the next phase use both paths again.
lunlinkctl lus

# A reset path: kill the connection of B (the listener stays).
fio_start reset 15
sleep 5
pkill -KILL -P "$B_LISTENER"
fio_end reset
figure "multipath reset_path_longest_io_ms=$LAT_MS"
check "no IO waited more than 1 s across a reset path (longest $LAT_MS ms)" test "$LAT_MS" -le 1000

check "no I/O error in the kernel log" sh -c '! dmesg | grep -qiE "I/O error|blk_update_request"'
lunlinkctl logout --all || fail "logout failed"
