#!/bin/sh
# LUN inventory changes while logged in (issue 5): a LUN added at the target gets a block
# device after the unit attention REPORTED LUNS DATA HAS CHANGED reaches the daemon; a LUN
# removed while its device is mounted is marked offline, not yanked; once unmounted, a rescan
# removes the device.
# needs: tgtd tgtadm dbus-daemon mkfs.ext4 mount umount dd
# timeout: 180
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:lunchange
PORTAL=127.0.0.1:3260

has_dev() { [ -n "$(dev_of "$1")" ]; }
offline() { lunlinkctl --json luns 2>/dev/null | tr -d ' \n' | grep -q '"lun":'"$1"',[^}]*"offline":true'; }
poke() { dd if="$1" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; }

tgtd_start 1 "$PORTAL"
make_file "$VM_TMP/lun1.img" 64
make_file "$VM_TMP/lun2.img" 64
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"

dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_start
at_exit "kill $LUNLINKD 2>/dev/null; wait $LUNLINKD 2>/dev/null"
at_exit "lunlinkctl logout --all --force >/dev/null 2>&1"
at_exit "umount $VM_TMP/mnt 2>/dev/null"
wait_for 30 lunlinkctl status || die "lunlinkd did not answer on the bus within 30 s"
lunlinkctl discover "$PORTAL" >/dev/null || die "lunlinkctl discover $PORTAL failed"
lunlinkctl login "$IQN" >/dev/null || die "lunlinkctl login $IQN failed"
wait_for 30 has_dev 1 || die "login gave LUN 1 no block device"
dev1=$(dev_of 1)
pass "login gives LUN 1 the device $dev1"

# A new LUN: the next command on LUN 1 meets the unit attention and the daemon rescans.
tgt_lun 1 1 2 "$VM_TMP/lun2.img" || die "tgtadm could not add LUN 2"
poke "$dev1"
wait_for 30 has_dev 2 || { poke "$dev1"; wait_for 10 has_dev 2; }
check "a LUN added at the target gets a block device without a manual rescan" has_dev 2
dev2=$(dev_of 2)
[ -n "$dev2" ] || die "no device for LUN 2"

# Remove LUN 2 at the target while its device is mounted.
mkdir -p "$VM_TMP/mnt"
mkfs.ext4 -q -F "$dev2" >/dev/null 2>&1 || die "mkfs.ext4 $dev2 failed"
mount "$dev2" "$VM_TMP/mnt" || die "mount $dev2 failed"
tgtadm -C 1 --lld iscsi --op delete --mode logicalunit --tid 1 --lun 2 || die "tgtadm could not delete LUN 2"
poke "$dev1"
wait_for 30 offline 2 || { poke "$dev1"; lunlinkctl session rescan "$IQN"; wait_for 10 offline 2; }
check "a vanished LUN whose device is mounted is marked offline" offline 2
check "its device is kept while mounted" test -e "/sys/block/${dev2#/dev/}"
grep -q "marked offline" "$VM_TMP/lunlinkd.log" && pass "the daemon logs why the device was kept"

# Unmounted, a rescan removes it.
umount "$VM_TMP/mnt" || fail "umount failed"
lunlinkctl session rescan "$IQN" || fail "lunlinkctl session rescan failed"
wait_for 30 sh -c "! test -e /sys/block/${dev2#/dev/}"
check "once unused, a rescan removes the vanished LUN's device" sh -c "! test -e /sys/block/${dev2#/dev/}"
check "LUN 1 still works" poke "$dev1"
lunlinkctl logout "$IQN" >/dev/null || fail "logout from $IQN failed"
