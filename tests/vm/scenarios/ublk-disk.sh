#!/bin/sh
# Every disk LUN becomes a ublk block device, driven through lunlinkctl over D-Bus: discovery
# and login give /dev/ublkbN with the LUN's exact size and block size and udev's stable
# by-path / by-id names; O_DIRECT and buffered data round trips through the target's backing
# file; discard and write-zeroes exactly as each LU advertises them; Logout refused with
# InUse while a device is held by device-mapper or has ext4 mounted, then logout removes the
# devices; after a new login the files on ext4 are intact; logout with force removes a
# device that is still mounted. Devices run with two queues here (the default is one).
# needs: tgtd tgtadm dbus-daemon dd mkfs.ext4 e2fsck /sbin/blkdiscard mkswap swapon swapoff
# needs: udevadm /lib/systemd/systemd-udevd dmsetup
# modules: dm-mod
# files: systemd/90-lunlink.rules
# timeout: 240
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:ublk
PORTAL=127.0.0.1:3260
MIB1=96 # LUN 1: 512-byte blocks, fully provisioned
MIB2=32 # LUN 2: 4096-byte blocks, thin provisioned (UNMAP, WRITE SAME)
MNT=/mnt/ublk

# dev_of LUN: the block device lunlinkctl shows for LUN, or nothing.
contains() { case "$1" in *"$2"*) return 0 ;; esac; return 1; }
gone() { ! test -e "/sys/block/${1#/dev/}" && ! test -e "$1"; }

tgtd_start 1 "$PORTAL"
make_file "$VM_TMP/lun1.img" "$MIB1"
make_file "$VM_TMP/lun2.img" "$MIB2"
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"
tgtadm -C 1 --lld iscsi --op new --mode logicalunit --tid 1 --lun 2 -b "$VM_TMP/lun2.img" \
    --blocksize 4096 || die "tgtadm could not add LUN 2 with 4096-byte blocks"
tgtadm -C 1 --lld iscsi --op update --mode logicalunit --tid 1 --lun 2 \
    --params thin_provisioning=1 || die "tgtadm could not make LUN 2 thin provisioned"
make_file "$VM_TMP/lun3.img" 8
tgt_lun 1 1 3 "$VM_TMP/lun3.img" || die "tgtadm could not add LUN 3"
tgtadm -C 1 --lld iscsi --op update --mode logicalunit --tid 1 --lun 3 \
    --params readonly=1 || die "tgtadm could not make LUN 3 read-only"

dbus_start

# udev with only our rule, as installed from systemd/.
mkdir -p /etc/udev/rules.d /run/udev
cp /src/systemd/90-lunlink.rules /etc/udev/rules.d/
/lib/systemd/systemd-udevd >"$VM_TMP/udevd.log" 2>&1 &
at_exit "kill $! 2>/dev/null"
wait_for 30 udevadm control --ping || die "systemd-udevd did not answer within 30 s"

mkdir -p "$VM_TMP/state"
printf '[devices]\nnr_queues = 2\nqueue_depth = 64\n' >"$VM_TMP/lunlink.toml"
lunlinkd_up

out=$(lunlinkctl discover "$PORTAL" 2>&1)
echo "$out"
echo "$out" | grep -q "$IQN" || die "lunlinkctl discover $PORTAL did not find $IQN"
lunlinkctl login "$IQN" || die "lunlinkctl login $IQN failed"
at_exit "umount $MNT 2>/dev/null"
lunlinkctl luns
dev1=$(dev_of 1)
dev2=$(dev_of 2)
if [ -z "$dev1" ] || [ -z "$dev2" ]; then
    lunlinkctl --json luns
    die "login did not give both LUNs a block device"
fi
pass "login to $IQN gives $dev1 (LUN 1) and $dev2 (LUN 2), shown by lunlinkctl luns"
n1=${dev1#/dev/}
n2=${dev2#/dev/}
check "$dev1 is a block device" test -b "$dev1"
check "$dev1 has the LUN's $((MIB1 * 1048576)) bytes" \
    test "$(($(cat "/sys/block/$n1/size") * 512))" -eq "$((MIB1 * 1048576))"
check "$dev1 has 512-byte logical blocks" test "$(cat "/sys/block/$n1/queue/logical_block_size")" -eq 512
check "$dev2 has the LUN's $((MIB2 * 1048576)) bytes" \
    test "$(($(cat "/sys/block/$n2/size") * 512))" -eq "$((MIB2 * 1048576))"
check "$dev2 has 4096-byte logical blocks" test "$(cat "/sys/block/$n2/queue/logical_block_size")" -eq 4096
# What tgtd reports for its LUs: write cache on with FUA (MODE SENSE), rotational (VPD 0xB1),
# and no transfer limit, so the session's MaxBurstLength (256 KiB) bounds the IO size.
q1=/sys/block/$n1/queue
check "$dev1 has the LU's volatile write cache and FUA" \
    test "$(cat $q1/write_cache) $(cat $q1/fua)" = "write back 1"
check "$dev1 is rotational like the LU" test "$(cat $q1/rotational)" -eq 1
check "$dev1 takes IOs up to MaxBurstLength, 256 KiB" test "$(cat $q1/max_hw_sectors_kb)" -eq 256
dev3=$(dev_of 3)
check "the write-protected LUN 3 is the read-only device ${dev3:-(none)}" \
    test -n "$dev3" -a "$(cat "/sys/block/${dev3#/dev/}/ro" 2>/dev/null)" = 1
check "writing to read-only $dev3 fails" \
    sh -c "! dd if=/dev/zero of=$dev3 bs=4096 count=1 oflag=direct 2>/dev/null"

# Stable names from the udev rule.
link1="/dev/disk/by-path/ip-$PORTAL-iscsi-$IQN-lun-1"
link2="/dev/disk/by-path/ip-$PORTAL-iscsi-$IQN-lun-2"
udevadm settle -t 30
wait_for 10 test -L "$link1"
check "udev links $link1 to $dev1" test "$(readlink -f "$link1")" = "$dev1"
check "udev links $link2 to $dev2" test "$(readlink -f "$link2")" = "$dev2"
ls -l /dev/disk/by-id/ 2>&1
byid=""
for l in /dev/disk/by-id/wwn-0x* /dev/disk/by-id/lunlink-*; do
    [ "$(readlink -f "$l")" = "$dev1" ] && byid="$byid ${l##*/}"
done
check "udev gives $dev1 by-id names from its WWID:$byid" test "$(echo $byid | wc -w)" -eq 2

# Raw data: O_DIRECT into the device lands in the backing file and reads back; so does a
# buffered read after the page cache is dropped.
dd if=/dev/urandom of="$VM_TMP/pattern" bs=1048576 count=4 2>/dev/null
want=$(md5 <"$VM_TMP/pattern")
dd if="$VM_TMP/pattern" of="$dev1" bs=1048576 seek=8 oflag=direct conv=fsync 2>/dev/null ||
    fail "O_DIRECT write to $dev1 failed"
got=$(dd if="$VM_TMP/lun1.img" bs=1048576 skip=8 count=4 2>/dev/null | md5)
check "4 MiB written to $dev1 with O_DIRECT land in the target's backing file" test "$got" = "$want"
got=$(dd if="$dev1" bs=1048576 skip=8 count=4 iflag=direct 2>/dev/null | md5)
check "4 MiB read back from $dev1 with O_DIRECT are identical" test "$got" = "$want"
echo 3 >/proc/sys/vm/drop_caches
got=$(dd if="$dev1" bs=65536 skip=128 count=64 2>/dev/null | md5)
check "a buffered read of $dev1 after drop_caches is identical" test "$got" = "$want"
dd if="$VM_TMP/pattern" of="$dev2" bs=4096 seek=3 count=256 oflag=direct conv=fsync 2>/dev/null
want=$(dd if="$VM_TMP/pattern" bs=4096 count=256 2>/dev/null | md5)
got=$(dd if="$VM_TMP/lun2.img" bs=4096 skip=3 count=256 2>/dev/null | md5)
check "1 MiB written to 4K-block $dev2 with O_DIRECT lands at the right blocks" test "$got" = "$want"

# Discard as advertised: the fully provisioned LUN offers none, the thin one frees space.
check "$dev1 (not thin provisioned) advertises no discard" \
    test "$(cat "/sys/block/$n1/queue/discard_max_bytes")" -eq 0
check "blkdiscard on $dev1 is refused" sh -c "! /sbin/blkdiscard -o 0 -l 1048576 $dev1 2>/dev/null"
check "$dev2 (thin provisioned) advertises discard" \
    test "$(cat "/sys/block/$n2/queue/discard_max_bytes")" -gt 0
dd if=/dev/urandom of="$dev2" bs=1048576 seek=8 count=8 oflag=direct conv=fsync 2>/dev/null
before=$(du -k "$VM_TMP/lun2.img" | cut -f1)
/sbin/blkdiscard -o $((8 * 1048576)) -l $((8 * 1048576)) "$dev2" || fail "blkdiscard on $dev2 failed"
after=$(du -k "$VM_TMP/lun2.img" | cut -f1)
check "discarding 8 MiB of $dev2 frees them in the backing file (${before} KiB -> ${after} KiB)" \
    test "$after" -le $((before - 8000))
zero=$(dd if=/dev/zero bs=1048576 count=8 2>/dev/null | md5)
got=$(dd if="$dev2" bs=1048576 skip=8 count=8 iflag=direct 2>/dev/null | md5)
check "discarded blocks of $dev2 read as zeros (LBPRZ)" test "$got" = "$zero"
wz=$(cat "/sys/block/$n2/queue/write_zeroes_max_bytes")
if [ "$wz" -gt 0 ]; then
    dd if=/dev/urandom of="$dev2" bs=1048576 seek=20 count=2 oflag=direct conv=fsync 2>/dev/null
    /sbin/blkdiscard -z -o $((20 * 1048576)) -l $((2 * 1048576)) "$dev2" || fail "/sbin/blkdiscard -z on $dev2 failed"
    got=$(dd if="$VM_TMP/lun2.img" bs=1048576 skip=20 count=2 2>/dev/null | md5)
    check "write-zeroes (WRITE SAME) zeroes 2 MiB of $dev2 in the backing file" \
        test "$got" = "$(dd if=/dev/zero bs=1048576 count=2 2>/dev/null | md5)"
else
    fail "$dev2 offers no write-zeroes although the LU has WRITE SAME (LBPWS)"
fi

# A device-mapper device on top holds LUN 2: Logout is refused and names the holder.
dmsetup --noudevsync create lunlink-hold --table "0 2048 linear $dev2 0" ||
    die "dmsetup could not create a linear device on $dev2"
at_exit "dmsetup --noudevsync remove lunlink-hold 2>/dev/null"
out=$(lunlinkctl logout "$IQN" 2>&1)
rc=$?
echo "$out"
check "Logout while dm holds $dev2 fails with exit status 4 (in use), got $rc" test "$rc" -eq 4
check "the refusal names $dev2 and its device-mapper holder" \
    sh -c 'case "$1" in *"$2 is in device-mapper lunlink-hold (dm-"*")"*) ;; *) exit 1 ;; esac' - "$out" "$dev2"
dmsetup --noudevsync remove lunlink-hold || die "dmsetup could not remove lunlink-hold"

# A partition of LUN 2 used as swap: udev names the partition, and Logout is refused.
# An MBR with one swap partition (type 0x82) from 4K-sector 256 to the end (65280 sectors).
printf '\0\0\0\0\202\0\0\0\0\1\0\0\0\377\0\0' |
    dd of="$dev2" bs=1 seek=446 conv=notrunc,fsync 2>/dev/null &&
    printf '\125\252' | dd of="$dev2" bs=1 seek=510 conv=notrunc,fsync 2>/dev/null &&
    blockdev --rereadpt "$dev2" || die "could not write a partition table to $dev2"
wait_for 10 test -b "${dev2}p1" || { cat /proc/partitions; die "${dev2}p1 did not appear after partitioning"; }
udevadm settle -t 30
check "udev links ${link2}-part1 to ${dev2}p1" test "$(readlink -f "${link2}-part1")" = "${dev2}p1"
mkswap "${dev2}p1" >/dev/null && swapon "${dev2}p1" || die "swapon ${dev2}p1 failed"
at_exit "swapoff ${dev2}p1 2>/dev/null"
out=$(lunlinkctl logout "$IQN" 2>&1)
rc=$?
echo "$out"
check "Logout while ${dev2}p1 is swap fails with exit status 4 (in use), got $rc" test "$rc" -eq 4
check "the refusal says ${dev2}p1 is in use as swap" contains "$out" "${dev2}p1 is in use as swap"
swapoff "${dev2}p1" || die "swapoff ${dev2}p1 failed"

# ext4, and Logout refused while it is mounted.
mkfs.ext4 -q -F "$dev1" || die "mkfs.ext4 on $dev1 failed"
mkdir -p "$MNT"
mount -t ext4 "$dev1" "$MNT" || die "mounting ext4 on $dev1 failed"
i=1
while [ $i -le 4 ]; do
    dd if=/dev/urandom of="$MNT/file$i" bs=65536 count=$((i * 6)) 2>/dev/null
    i=$((i + 1))
done
mkdir "$MNT/dir" && cp "$VM_TMP/pattern" "$MNT/dir/pattern"
sync
(cd "$MNT" && md5sum file1 file2 file3 file4 dir/pattern) >"$VM_TMP/sums"
out=$(lunlinkctl logout "$IQN" 2>&1)
rc=$?
echo "$out"
check "Logout while $dev1 is mounted fails with exit status 4 (in use), got $rc" test "$rc" -eq 4
check "the refusal names the device and its mount point" contains "$out" "$dev1 is mounted on $MNT"
check "$dev1 is still there and mounted after the refused logout" \
    sh -c "test -b $dev1 && grep -q '^$dev1 $MNT ' /proc/mounts"
umount "$MNT" || die "umount $MNT failed"
check "ext4 on $dev1 is clean (e2fsck -fn)" e2fsck -fn "$dev1"
lunlinkctl logout "$IQN" || die "logout after umount failed"
wait_for 15 gone "$dev1"
check "logout removes $dev1" gone "$dev1"
check "logout removes $dev2" gone "$dev2"
wait_for 10 sh -c "! test -L '$link1'"
check "logout removes the udev link $link1" sh -c "! test -L '$link1'"
check "lunlinkctl luns lists nothing after logout" test -z "$(lunlinkctl --no-legend luns)"

lunlinkctl login "$IQN" || die "the second login to $IQN failed"
dev1=$(dev_of 1)
[ -n "$dev1" ] || die "the second login gave LUN 1 no block device"
pass "the second login gives LUN 1 the block device $dev1"
mount -t ext4 "$dev1" "$MNT" || die "mounting ext4 on $dev1 after a new login failed"
(cd "$MNT" && md5sum -c "$VM_TMP/sums")
check "files on ext4 are identical after logout and login" test $? -eq 0

# Logout with force removes a device that is still mounted.
sync
lunlinkctl logout --force "$IQN" || fail "logout --force with $dev1 mounted failed"
wait_for 15 gone "$dev1"
check "logout --force removes $dev1 although it is mounted" gone "$dev1"
umount "$MNT" 2>/dev/null || umount -l "$MNT"
