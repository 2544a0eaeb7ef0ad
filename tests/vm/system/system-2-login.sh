#!/bin/bash
# Discover and log in as root against tgtd in the VM (a target kept in /etc/tgt/conf.d, so it
# comes back after a reboot): /dev/ublkbN appears with its /dev/disk/by-path and by-id links
# from udev; a partition made on it gets its -part1 links too.
# boot: 1
# timeout: 180
. /vm/lib.sh
. /vm/system-lib.sh

mkdir -p /var/lib/lunlink-vm
truncate -s 512M /var/lib/lunlink-vm/lun1.img
cat >/etc/tgt/conf.d/lunlink-vm.conf <<CONF
<target $IQN>
    backing-store /var/lib/lunlink-vm/lun1.img
</target>
CONF
systemctl enable -q tgt 2>/dev/null
systemctl restart tgt || die "tgt.service did not start"
wait_for 30 sh -c "tgtadm --lld iscsi --op show --mode target | grep -q '$IQN'" ||
    die "tgtd does not show $IQN"

lunlinkctl discover 127.0.0.1 || die "lunlinkctl discover 127.0.0.1 failed"
lunlinkctl login "$IQN" || die "lunlinkctl login $IQN failed"
dev=$(lun1_dev)
[ -n "$dev" ] || { lunlinkctl --json luns; journalctl -u lunlinkd --no-pager | tail -20; die "login gave LUN 1 no block device"; }
pass "login to $IQN gives $dev"
check "$dev is a block device" test -b "$dev"
note "$dev is $(stat -c 'major 0x%t minor 0x%T' "$dev"); /dev/ublk-control $(stat -c '0x%t:0x%T' /dev/ublk-control)"
udevadm settle
path=$BY_PATH
check "udev made $path -> $dev" test "$(readlink -f "$path")" = "$dev"
ids=$(for l in /dev/disk/by-id/*; do [ "$(readlink -f "$l")" = "$dev" ] && echo "${l##*/}"; done)
check "udev made /dev/disk/by-id links to $dev ($(echo $ids))" test -n "$ids"

echo ',,L' | sfdisk -q "$dev" >"$VM_TMP/sfdisk.log" 2>&1 || { cat "$VM_TMP/sfdisk.log"; die "sfdisk on $dev failed"; }
udevadm settle
wait_for 10 test -b "${dev}p1"
check "the partition ${dev}p1 appears" test -b "${dev}p1"
check "udev made $path-part1 -> ${dev}p1" test "$(readlink -f "$path-part1")" = "${dev}p1"
mkfs.ext4 -q -F -L lunlink-data "${dev}p1" || die "mkfs.ext4 on ${dev}p1 failed"
pass "ext4 made on ${dev}p1"
