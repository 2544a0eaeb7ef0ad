#!/bin/sh
# Native multipath with every path down. One LU through two TCP proxies (socat) in front of
# tgtd, lunlinkd with [multipath] no_path_timeout = 40. (1) Both proxies silenced (SIGSTOP: no
# RST) for 20 s while fio writes with crc32c verification: the LU shows `queueing`, IO waits
# and completes once they resume, verify clean, no I/O error. (2) Both proxies gone (their
# connections reset, new ones refused) for longer than no_path_timeout: a write fails with EIO
# after about 40 s, not before and not never, no task hangs; the proxies back, the device
# works again.
# needs: tgtd tgtadm dbus-daemon fio socat pkill dd
# timeout: 300
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:allpaths
NO_PATH=40

tgt_two_paths "$IQN"
dbus_start
mkdir -p "$VM_TMP/state"
printf '[multipath]\nno_path_timeout = %s\n' "$NO_PATH" >"$VM_TMP/lunlink.toml"
lunlinkd_up
login_two_paths "$IQN"
# lu_is STATE: the LU (the only one) is in STATE (optimal, degraded, queueing, failed).
lu_is() { test "$(lunlinkctl --json lus | tr -d ' \n' | grep -o '"policy":"[a-z-]*","state":"[a-z]*"' | cut -d'"' -f8)" = "$1"; }

# (1) Both paths silent for 20 s.
fio_start down 35
wait_for 20 progressed "$dev" 2000 || die "fio made no progress"
t0=$(now_ms)
pkill -STOP -f 'TCP-LISTEN:327'
wait_for 15 lu_is queueing && pass "with both paths silent the LU shows queueing" ||
    { lunlinkctl --json lus; fail "the LU never showed queueing"; }
lunlinkctl lus
while [ $(($(now_ms) - t0)) -lt 20000 ]; do sleep 1; done
pkill -CONT -f 'TCP-LISTEN:327'
w=$(writes "$dev")
wait_for 60 progressed "$dev" $((w + 500)) || fail "IO did not resume after the paths came back"
figure "all-paths-down resumed_after_ms=$(($(now_ms) - t0)) (paths silent for 20 s)"
fio_result "$FIO" "$VM_TMP/fio-down.out"
check "fio randwrite QD32 with crc32c verify across 20 s without a path completes clean (exit $rc, error ${err:-?})" \
    test "$rc" -eq 0 -a "${err:-1}" = 0
wait_for 30 lu_is optimal || { lunlinkctl lus; fail "the LU did not come back to optimal"; }

# (2) Both paths gone for longer than no_path_timeout.
pkill -KILL -f 'TCP-LISTEN:327'
t0=$(now_ms)
dd if=/dev/urandom of="$dev" bs=4k count=1 seek=100 oflag=direct conv=fsync 2>"$VM_TMP/dd.err"
rc=$?
took=$(($(now_ms) - t0))
cat "$VM_TMP/dd.err"
figure "all-paths-down eio_after_ms=$took (no_path_timeout ${NO_PATH} s)"
check "a write with no path fails (dd exit $rc)" test "$rc" -ne 0
check "with an I/O error" grep -qi "I/O error\|Input/output" "$VM_TMP/dd.err"
check "after about no_path_timeout ($took ms)" test "$took" -ge $(((NO_PATH - 5) * 1000)) -a "$took" -le $(((NO_PATH + 20) * 1000))
check "no task hung meanwhile" sh -c '! dmesg | grep -q "blocked for more than"'
for port in 3270 3271; do
    socat TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr TCP:$P </dev/null >/dev/null 2>&1 &
done
wait_for 90 lu_is optimal || { lunlinkctl lus; fail "the LU did not come back once the proxies were back"; }
dd if=/dev/urandom of="$VM_TMP/block" bs=4k count=1 2>/dev/null
dd if="$VM_TMP/block" of="$dev" bs=4k seek=100 oflag=direct conv=fsync 2>/dev/null
check "the device works again: a block written reads back" \
    test "$(dd if="$dev" bs=4k skip=100 count=1 iflag=direct 2>/dev/null | md5)" = "$(md5 <"$VM_TMP/block")"
