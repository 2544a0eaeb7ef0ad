#!/bin/sh
# Daemon crash with a mounted filesystem (ublk user recovery): lunlinkd is killed with SIGKILL
# while fio writes (4k random, QD32, crc32c verify) to a file on ext4 on /dev/ublkbN. The
# device stays (IO waits in the kernel); a new lunlinkd finds it, logs in to its target again
# and re-attaches it; fio then completes with its verify clean, e2fsck finds the filesystem
# clean, the kernel logged no I/O error, and the device still works and logs out normally.
# needs: tgtd tgtadm dbus-daemon fio mkfs.ext4 e2fsck dmesg
# timeout: 240
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:restart
PORTAL=127.0.0.1:3260
MNT=/mnt/restart


tgtd_start 1 "$PORTAL"
make_file "$VM_TMP/lun1.img" 192
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"

dbus_start
mkdir -p "$VM_TMP/state"
: >"$VM_TMP/lunlink.toml"
lunlinkd_up
login_lun1 "$PORTAL" "$IQN"

mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 on $dev failed"
mkdir -p "$MNT"
mount -t ext4 "$dev" "$MNT" || die "mounting $dev failed"
at_exit "umount $MNT 2>/dev/null"
dmesg -c >/dev/null

fio --name=crash --filename="$MNT/data" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
    --direct=1 --size=64m --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output-format=terse,normal >"$VM_TMP/fio.out" 2>&1 &
FIO=$!
at_exit "kill $FIO 2>/dev/null"
# Kill the daemon in the middle of the write phase: once fio has some writes done.
start=$(writes "$dev")
wait_for 60 progressed "$dev" $((start + 2000)) || die "fio made no progress on $dev within 60 s"
alive "$FIO" || die "fio ended before the daemon could be killed (too fast a machine?)"
kill -s KILL "$LUNLINKD"
wait "$LUNLINKD" 2>/dev/null
killed_at=$(now_ms)
at_killed=$(writes "$dev")
note "lunlinkd killed after $((at_killed - start)) writes of fio"
check "$dev stays after lunlinkd was killed" test -b "$dev"
check "fio waits (does not fail) while no daemon serves $dev" alive "$FIO"

lunlinkd_start
wait_for 30 lunlinkctl status || die "the restarted lunlinkd did not answer on the bus within 30 s"
wait_for 60 progressed "$dev" $((at_killed + 1)) || die "IO on $dev did not resume within 60 s of the restart"
resumed_at=$(now_ms)
figure "ublk-restart io_resumed_after_kill_ms=$((resumed_at - killed_at))"
check "the new lunlinkd re-attached $dev" grep -q "re-attached after a daemon restart" "$VM_TMP/lunlinkd.log"
check "lunlinkctl luns shows LUN 1 as $dev again" test "$(dev_of 1)" = "$dev"

wait_for 180 sh -c "! kill -0 $FIO 2>/dev/null"
fio_result "$FIO" "$VM_TMP/fio.out"
if [ "$rc" -eq 0 ] && [ "$err" = 0 ]; then
    pass "fio 4k random write QD32 with crc32c verify on ext4 completes across a SIGKILL of lunlinkd"
else
    fail "fio across the daemon restart failed (exit $rc, error ${err:-?})"
fi

umount "$MNT" || fail "unmounting $MNT failed"
e2fsck -fn "$dev" >"$VM_TMP/e2fsck.log" 2>&1
check "e2fsck finds the ext4 on $dev clean after the daemon restart (exit $?)" test $? -eq 0 ||
    cat "$VM_TMP/e2fsck.log"
dmesg >"$VM_TMP/dmesg.txt"
if grep -qiE "I/O error|EXT4-fs error|Buffer I/O" "$VM_TMP/dmesg.txt"; then
    grep -iE "I/O error|EXT4-fs error|Buffer I/O" "$VM_TMP/dmesg.txt" | head -5
    fail "the kernel logged I/O errors across the daemon restart"
else
    pass "no I/O error in dmesg across the daemon restart"
fi

lunlinkctl logout "$IQN" || fail "logout from $IQN after the restart failed"
wait_for 15 sh -c "! test -e /sys/block/${dev#/dev/}"
check "logout removes the re-attached $dev" sh -c "! test -e /sys/block/${dev#/dev/}"
