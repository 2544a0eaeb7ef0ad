#!/bin/sh
# The replacement timeout on a block device: with `replacement = 10`, tgtd is killed; a direct
# read of /dev/ublkbN waits, then fails with an I/O error within the timeout plus a few
# seconds (never hangs: the kernel's hung-task detector, set to 30 s, reports nothing), and
# lunlinkd keeps answering on the bus meanwhile. When the target is back the session logs in
# again and the device reads and writes correctly.
# needs: tgtd tgtadm dbus-daemon dd dmesg
# timeout: 180
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:replacement
PORTAL=127.0.0.1:3260
REPLACEMENT=10


make_file "$VM_TMP/lun1.img" 32
tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
at_exit 'kill -s KILL $TGTD 2>/dev/null'

if [ -w /proc/sys/kernel/hung_task_timeout_secs ]; then
    old_hung=$(cat /proc/sys/kernel/hung_task_timeout_secs)
    echo 30 >/proc/sys/kernel/hung_task_timeout_secs
    at_exit "echo $old_hung >/proc/sys/kernel/hung_task_timeout_secs"
    HUNG=yes
else
    note "this kernel has no hung-task detector; relying on the timing checks"
    HUNG=no
fi

dbus_start
mkdir -p "$VM_TMP/state"
printf '[timeouts]\nreplacement = %s\n' "$REPLACEMENT" >"$VM_TMP/lunlink.toml"
lunlinkd_up
login_lun1 "$PORTAL" "$IQN"
dd if=/dev/urandom of="$VM_TMP/before" bs=1M count=1 2>/dev/null
dd if="$VM_TMP/before" of="$dev" bs=1M count=1 oflag=direct 2>/dev/null || die "writing to $dev failed"
dmesg -c >/dev/null

kill -s KILL "$TGTD"
wait "$TGTD" 2>/dev/null
down_at=$(now_ms)
# Offset 4 MiB: nothing the page cache could answer.
dd if="$dev" of=/dev/null bs=4k count=1 skip=1024 iflag=direct 2>"$VM_TMP/dd.err" &
DD=$!
wait_for 30 session_is reconnecting || wait_for 30 session_is failed
check "lunlinkd answers on the bus during the outage (session shown as not logged in)" \
    sh -c "lunlinkctl --no-legend sessions | grep -qE 'reconnecting|failed'"
wait_for $((REPLACEMENT + 30)) sh -c "! kill -0 $DD 2>/dev/null"
if kill -0 "$DD" 2>/dev/null; then
    fail "a read of $dev still hangs $((REPLACEMENT + 30)) s after the target went away"
    kill "$DD" 2>/dev/null
else
    wait "$DD"
    rc=$?
    took=$(( $(now_ms) - down_at ))
    figure "ublk-replacement eio_after_ms=$took replacement_s=$REPLACEMENT"
    check "the read fails (dd exit $rc) once the ${REPLACEMENT} s replacement timeout expires" test "$rc" -ne 0
    check "the read failed after the timeout, not before (${took} ms)" test "$took" -ge $((REPLACEMENT * 1000 - 500))
    check "the read failed within the timeout plus 15 s (${took} ms)" test "$took" -le $((REPLACEMENT * 1000 + 15000))
    check "the error is an I/O error" grep -qi "I/O error\|Input/output error" "$VM_TMP/dd.err"
fi
check "new IO fails at once while the target is still gone" \
    sh -c "! dd if=$dev of=/dev/null bs=4k count=1 skip=2048 iflag=direct 2>/dev/null"
if [ "$HUNG" = yes ]; then
    if dmesg | grep -q "blocked for more than"; then
        dmesg | grep -A3 "blocked for more than" | head -8
        fail "the kernel reported a hung task"
    else
        pass "no hung task reported"
    fi
fi

tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
wait_for 90 session_is logged-in || fail "the session did not log in again within 90 s of the target's return"
pass "the session logs in again when the target is back"
got=$(dd if="$dev" bs=1M count=1 iflag=direct 2>/dev/null | md5)
check "$dev reads the data written before the outage" test "$got" = "$(md5 <"$VM_TMP/before")"
dd if=/dev/urandom of="$VM_TMP/after" bs=1M count=1 2>/dev/null
dd if="$VM_TMP/after" of="$dev" bs=1M count=1 seek=8 oflag=direct 2>/dev/null
check "$dev takes writes again" test "$(dd if="$dev" bs=1M count=1 skip=8 iflag=direct 2>/dev/null | md5)" = "$(md5 <"$VM_TMP/after")"
lunlinkctl logout "$IQN" || fail "logout from $IQN failed"
