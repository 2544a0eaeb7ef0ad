#!/bin/sh
# Smoke test of the VM itself: the ublk driver is there, an in-guest tgtd serves a file LUN
# on loopback that libiscsi's tools can see, and a private system bus answers calls.
# needs: tgtd tgtadm iscsi-ls iscsi-readcapacity16 dbus-daemon dbus-send
# timeout: 120
. /vm/lib.sh

IQN=iqn.2024-01.org.lunlink.vm:smoke
MIB=64

check "ublk_drv module loaded" test -d /sys/module/ublk_drv
check "/dev/ublk-control is a character device" test -c /dev/ublk-control
check "iscsi_tcp transport registered" test -d /sys/class/iscsi_transport/tcp

tgtd_start 1 127.0.0.1:3260
make_file "$VM_TMP/lun1.img" "$MIB"
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"
pass "tgtd serves $IQN with a ${MIB} MiB file LUN on 127.0.0.1:3260"

out=$(timeout 30 iscsi-ls -s iscsi://127.0.0.1:3260 2>&1)
echo "$out"
if echo "$out" | grep -q "^Target:$IQN Portal:127.0.0.1:3260" &&
   echo "$out" | grep -q '^Lun:1 *Type:DIRECT_ACCESS'; then
    pass "iscsi-ls lists $IQN with LUN 1 as a disk"
else
    fail "iscsi-ls did not list $IQN with LUN 1 as a disk"
fi

size=$(timeout 30 iscsi-readcapacity16 -s "iscsi://127.0.0.1:3260/$IQN/1" 2>&1)
check "READ CAPACITY(16) through libiscsi reports $((MIB * 1048576)) bytes (got: $size)" \
    test "$size" = "$((MIB * 1048576))"

dbus_start
id=$(dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetId 2>&1)
echo "$id"
if echo "$id" | grep -q 'string "[0-9a-f]\{32\}"'; then
    pass "private system bus at $DBUS_SYSTEM_BUS_ADDRESS answers GetId"
else
    fail "private system bus at $DBUS_SYSTEM_BUS_ADDRESS does not answer GetId"
fi
