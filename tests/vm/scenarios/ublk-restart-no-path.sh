#!/bin/sh
# Daemon crash while the target is gone too: lunlinkd is SIGKILLed with a live /dev/ublkbN and
# tgtd is killed. The restarted lunlinkd cannot reach the LU; a direct read of the device waits,
# then fails with an I/O error once the node's replacement timeout (8 s) has run out, counted
# from the restart (the device was taken over without a path, and never hangs). When the
# target comes back, lunlinkd logs in again, the same device serves the data written before
# the crash and takes writes, and logout removes it.
# needs: tgtd tgtadm dbus-daemon dd
# timeout: 240
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:nopath
PORTAL=127.0.0.1:3260
REPLACEMENT=8


make_file "$VM_TMP/lun1.img" 32
tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
at_exit 'kill -s KILL $TGTD 2>/dev/null'

dbus_start
mkdir -p "$VM_TMP/state"
printf '[timeouts]\nreplacement = %s\n' "$REPLACEMENT" >"$VM_TMP/lunlink.toml"
lunlinkd_up
login_lun1 "$PORTAL" "$IQN"
dd if=/dev/urandom of="$VM_TMP/before" bs=1M count=1 2>/dev/null
dd if="$VM_TMP/before" of="$dev" bs=1M count=1 oflag=direct 2>/dev/null || die "writing to $dev failed"

kill -s KILL "$LUNLINKD"
wait "$LUNLINKD" 2>/dev/null
kill -s KILL "$TGTD"
wait "$TGTD" 2>/dev/null
check "$dev stays after lunlinkd was killed" test -b "$dev"
# Offset 4 MiB: nothing the page cache could answer.
dd if="$dev" of=/dev/null bs=4k count=1 skip=1024 iflag=direct 2>"$VM_TMP/dd.err" &
DD=$!
at_exit "kill $DD 2>/dev/null"

lunlinkd_start
restart_at=$(now_ms)
wait_for 30 lunlinkctl status || die "the restarted lunlinkd did not answer on the bus within 30 s"
wait_for $((REPLACEMENT + 30)) sh -c "! kill -0 $DD 2>/dev/null"
if kill -0 "$DD" 2>/dev/null; then
    fail "a read of $dev still hangs $((REPLACEMENT + 30)) s after the restart with the target gone"
else
    wait "$DD"
    rc=$?
    took=$(( $(now_ms) - restart_at ))
    figure "ublk-restart-no-path eio_after_restart_ms=$took replacement_s=$REPLACEMENT"
    check "the read fails (dd exit $rc) with the LU unreachable after the restart" test "$rc" -ne 0
    check "it failed after the replacement timeout, not before (${took} ms)" test "$took" -ge $((REPLACEMENT * 1000 - 500))
    check "it failed within the timeout plus 15 s (${took} ms)" test "$took" -le $((REPLACEMENT * 1000 + 15000))
    check "the error is an I/O error" grep -qi "I/O error\|Input/output error" "$VM_TMP/dd.err"
fi
check "$dev is still there while its LU is unreachable" test -b "$dev"
check "lunlinkd answers on the bus meanwhile" lunlinkctl status

tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
wait_for 90 session_is logged-in || fail "no session logged in within 90 s of the target's return"
got=""
wait_for 30 sh -c "dd if=$dev of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null" &&
    got=$(dd if="$dev" bs=1M count=1 iflag=direct 2>/dev/null | md5)
check "$dev reads the data written before the crash once the target is back" test "$got" = "$(md5 <"$VM_TMP/before")"
check "lunlinkctl luns shows LUN 1 as $dev again" test "$(dev_of 1)" = "$dev"
dd if=/dev/urandom of="$VM_TMP/after" bs=1M count=1 2>/dev/null
dd if="$VM_TMP/after" of="$dev" bs=1M count=1 seek=8 oflag=direct 2>/dev/null
check "$dev takes writes again" test "$(dd if="$dev" bs=1M count=1 skip=8 iflag=direct 2>/dev/null | md5)" = "$(md5 <"$VM_TMP/after")"
lunlinkctl logout "$IQN" || fail "logout from $IQN failed"
wait_for 15 sh -c "! test -e /sys/block/${dev#/dev/}"
check "logout removes $dev" sh -c "! test -e /sys/block/${dev#/dev/}"
