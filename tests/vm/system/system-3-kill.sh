#!/bin/bash
# Under the hardened unit: `systemctl kill -s KILL lunlinkd` while fio (4k random write QD32,
# crc32c verify) writes to a file on ext4 on the device; systemd restarts the daemon
# (Restart=on-failure), which re-attaches the device (ublk user recovery); fio's verify is
# clean, the kernel logged no I/O error, e2fsck finds the file system clean.
# boot: 1
# timeout: 300
. /vm/lib.sh
. /vm/system-lib.sh

MNT=/mnt/kill
dev=$(lun1_dev)
[ -b "${dev}p1" ] || die "no ${dev}p1 from system-2-login"
mkdir -p "$MNT"
mount "${dev}p1" "$MNT" || die "mounting ${dev}p1 failed"
at_exit "umount $MNT 2>/dev/null"
dmesg -c >/dev/null

fio --name=kill --filename="$MNT/data" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
    --direct=1 --size=64m --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output-format=terse,normal >"$VM_TMP/fio.out" 2>&1 &
FIO=$!
at_exit "kill $FIO 2>/dev/null"
start=$(writes "$dev")
wait_for 60 progressed "$dev" $((start + 2000)) || die "fio made no progress on $dev within 60 s"
alive "$FIO" || die "fio ended before the daemon could be killed"
old=$(systemctl show -p MainPID --value lunlinkd.service)
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl kill -s KILL lunlinkd.service
killed_at=$(now_ms)
at_killed=$(writes "$dev")
note "lunlinkd (pid $old) killed after $((at_killed - start)) writes of fio"
check "$dev stays after lunlinkd was killed" test -b "$dev"

restarted() {
    pid=$(systemctl show -p MainPID --value lunlinkd.service)
    [ -n "$pid" ] && [ "$pid" != 0 ] && [ "$pid" != "$old" ] && systemctl -q is-active lunlinkd.service
}
wait_for 60 restarted
check "systemd restarted lunlinkd (new pid $(systemctl show -p MainPID --value lunlinkd.service), restarts $(systemctl show -p NRestarts --value lunlinkd.service))" restarted
wait_for 90 progressed "$dev" $((at_killed + 1)) || fail "IO on $dev did not resume within 90 s of the kill"
figure "system-vm io_resumed_after_kill_ms=$(( $(now_ms) - killed_at ))"
check "the restarted lunlinkd re-attached $dev" \
    sh -c "journalctl -u lunlinkd --since '$since' --no-pager | grep -q 're-attached after a daemon restart'"

wait_for 240 sh -c "! kill -0 $FIO 2>/dev/null"
fio_result "$FIO" "$VM_TMP/fio.out"
if [ "$rc" -eq 0 ] && [ "$err" = 0 ]; then
    pass "fio randwrite with crc32c verify on ext4 completes across systemctl kill -s KILL lunlinkd"
else
    fail "fio across the daemon restart failed (exit $rc, error ${err:-?})"
fi
umount "$MNT" || fail "unmounting $MNT failed"
e2fsck -fn "${dev}p1" >"$VM_TMP/e2fsck.log" 2>&1
check "e2fsck finds ${dev}p1 clean after the restart (exit $?)" test $? -eq 0 || cat "$VM_TMP/e2fsck.log"
if dmesg | grep -qiE "I/O error|EXT4-fs error|Buffer I/O"; then
    dmesg | grep -iE "I/O error|EXT4-fs error|Buffer I/O" | head -5
    fail "the kernel logged I/O errors across the daemon restart"
else
    pass "no I/O error in the kernel log across the daemon restart"
fi
