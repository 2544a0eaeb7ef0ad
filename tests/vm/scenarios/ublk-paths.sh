#!/bin/sh
# One block device per logical unit, whatever the number of paths: a target reachable on two
# portals gives two sessions and two LUN objects but one /dev/ublkbN. Logging out of the path
# that carries the IO, while reads are in flight, keeps the device working on the other path
# (no read fails); logging out of the last path removes the device.
# needs: tgtd tgtadm dbus-daemon dd fio
# timeout: 180
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:paths
P1=127.0.0.1:3260
P2=127.0.0.2:3260
MIB=64

inflight() { test "$(awk '{print $1 + $2}' "/sys/block/$1/inflight")" -gt 0; }

tgtd_start 1 "$P1"
tgtadm -C 1 --lld iscsi --op new --mode portal --param portal="$P2" || die "tgtd could not listen on $P2"
make_file "$VM_TMP/lun1.img" "$MIB"
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"

dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_up
lunlinkctl discover "$P1" >/dev/null || die "lunlinkctl discover $P1 failed"
lunlinkctl discover "$P2" >/dev/null || die "lunlinkctl discover $P2 failed"
# The first path first, so that it is the one carrying the IO.
lunlinkctl login --portal "$P1" "$IQN" || die "login to $IQN on $P1 failed"
lunlinkctl login --portal "$P2" "$IQN" || die "login to $IQN on $P2 failed"
lunlinkctl sessions
lunlinkctl luns
rows=$(dev_of 1 | wc -l)
devs=$(dev_of 1 | sort -u)
check "two sessions give two LUN objects for LUN 1 (got $rows)" test "$rows" -eq 2
check "both LUN objects name the same device ($(echo $devs))" test "$(echo "$devs" | wc -l)" -eq 1
dev=$devs
n=${dev#/dev/}
check "the LU has one block device" test "$(ls -d /sys/block/ublkb* | wc -l)" -eq 1

dd if=/dev/urandom of="$VM_TMP/pattern" bs=1048576 count=8 2>/dev/null
dd if="$VM_TMP/pattern" of="$dev" bs=1048576 oflag=direct conv=fsync 2>/dev/null || die "writing to $dev failed"

# Reads in flight while the path carrying them goes away.
fio --name=reads --filename="$dev" --rw=randread --bs=4k --iodepth=32 --ioengine=libaio \
    --direct=1 --size=8m --runtime=6 --time_based >"$VM_TMP/fio.log" 2>&1 &
FIO=$!
wait_for 20 inflight "$n" || fail "no reads in flight on $dev"
lunlinkctl logout --portal "$P1" "$IQN" || fail "logout of the path on $P1 failed"
check "$dev stays after one of its two paths logged out" test -b "$dev"
wait $FIO
rc=$?
grep -E 'err=|IOPS=' "$VM_TMP/fio.log"
check "reads in flight across the logout of their path all succeed (fio exit $rc)" \
    sh -c "test $rc -eq 0 && grep -q 'err= 0' '$VM_TMP/fio.log'"
got=$(dd if="$dev" bs=1048576 count=8 iflag=direct 2>/dev/null | md5)
check "$dev reads the data back over the remaining path" test "$got" = "$(md5 <"$VM_TMP/pattern")"
check "lunlinkctl luns still shows LUN 1 on $dev" test "$(dev_of 1)" = "$dev"

lunlinkctl logout "$IQN" || fail "logout of the last path failed"
wait_for 15 sh -c "! test -e /sys/block/$n"
check "logging out of the last path removes $dev" sh -c "! test -e /sys/block/$n"
