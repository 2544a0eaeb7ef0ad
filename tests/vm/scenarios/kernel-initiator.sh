#!/bin/sh
# The kernel's own iSCSI initiator (open-iscsi) against an in-guest tgtd: discovery, login,
# the disk's size, a data round trip, ext4 on top, and the 4K random-read IOPS that our ublk devices will
# be compared with.
# needs: tgtd tgtadm iscsid iscsiadm fio mkfs.ext4
# timeout: 240
. /vm/lib.sh

IQN=iqn.2024-01.org.lunlink.vm:kernel
PORTAL=127.0.0.1:3260
MIB=256

tgtd_start 1 "$PORTAL"
make_file "$VM_TMP/lun1.img" "$MIB"
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"

iscsid_start
found=$(iscsiadm -m discovery -t sendtargets -p "$PORTAL" 2>&1)
echo "$found"
echo "$found" | grep -q "^$PORTAL,1 $IQN\$" || die "SendTargets discovery did not return $IQN"
pass "SendTargets discovery through iscsiadm finds $IQN"

iscsiadm -m node -T "$IQN" -p "$PORTAL" --login || die "iscsiadm login to $IQN failed"
at_exit "iscsiadm -m node -T $IQN -p $PORTAL --logout >/dev/null 2>&1"
wait_for 30 iscsi_disk 1 || die "no SCSI disk appeared for LUN 1 within 30 s of login"
dev=$(iscsi_disk 1)
pass "login to $IQN gives block device $dev"

sectors=$(cat "/sys/block/${dev#/dev/}/size")
check "$dev has $((MIB * 1048576)) bytes (kernel says $((sectors * 512)))" \
    test "$((sectors * 512))" -eq "$((MIB * 1048576))"

# Data written through the initiator must land in the target's backing file.
dd if=/dev/urandom of="$VM_TMP/pattern" bs=65536 count=16 2>/dev/null
dd if="$VM_TMP/pattern" of="$dev" bs=65536 seek=100 conv=fsync 2>/dev/null
want=$(md5sum <"$VM_TMP/pattern" | cut -d' ' -f1)
got=$(dd if="$VM_TMP/lun1.img" bs=65536 skip=100 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
check "1 MiB written to $dev lands in the target's backing file" test "$want" = "$got"
echo 3 >/proc/sys/vm/drop_caches
got=$(dd if="$dev" bs=65536 skip=100 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
check "1 MiB read back from $dev after dropping caches matches" test "$want" = "$got"

fio --name=r --filename="$dev" --rw=randread --bs=4k --iodepth=32 --ioengine=libaio \
    --direct=1 --runtime=10 --time_based --output-format=terse,normal >"$VM_TMP/fio.out" 2>&1
rc=$?
grep -v '^3;' "$VM_TMP/fio.out"
# Terse format v3: field 8 is read IOPS.
iops=$(awk -F';' '/^3;/ {print $8}' "$VM_TMP/fio.out")
if [ "$rc" -eq 0 ] && [ -n "$iops" ] && [ "$iops" -gt 0 ]; then
    pass "fio 4k random read at QD32 on $dev ran"
    figure "kernel randread4k_qd32_iops=$iops"
else
    fail "fio 4k random read at QD32 on $dev failed (exit $rc)"
fi

mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 on $dev failed"
mkdir -p /mnt/k
mount -t ext4 "$dev" /mnt/k || die "mounting the new ext4 on $dev failed"
cp "$VM_TMP/pattern" /mnt/k/pattern && umount /mnt/k && mount -t ext4 "$dev" /mnt/k &&
    cmp -s "$VM_TMP/pattern" /mnt/k/pattern
check "a file on ext4 over $dev survives umount and mount" test $? -eq 0
umount /mnt/k

iscsiadm -m node -T "$IQN" -p "$PORTAL" --logout || fail "iscsiadm logout from $IQN failed"
wait_for 30 sh -c "! test -e $dev" && pass "logout removes $dev" ||
    fail "$dev still present 30 s after logout"
