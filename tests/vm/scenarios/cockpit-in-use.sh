#!/bin/sh
# The Cockpit page's InUse path on a real device, run by tests/cockpit/vm-in-use (which names
# it): a LUN's /dev/ublkbN carries a mounted ext4, so its session cannot be logged out. The
# page runs in Chromium on the host, against cockpit-ws on the host, whose bridge is this
# guest's cockpit-bridge, reached through the virtio serial port lunlink.bridge (one byte
# stream, no network). The host side clicks Disconnect (refused: "mounted on /mnt"), then
# "Disconnect anyway" and confirms; here the session and device must then be gone.
# needs: tgtd tgtadm dbus-daemon mkfs.ext4 cockpit-bridge
# files: /usr/share/cockpit/base1 cockpit/dist
# virtio-port: lunlink.bridge
# timeout: 300
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:cockpit
PORTAL=127.0.0.1:3260
MNT=/mnt

port=
for v in /sys/class/virtio-ports/*; do
    [ "$(cat "$v/name" 2>/dev/null)" = lunlink.bridge ] && port=/dev/${v##*/}
done
[ -c "$port" ] || die "no virtio port lunlink.bridge (tests/cockpit/vm-in-use gives QEMU one)"

make_file "$VM_TMP/lun1.img" 64
tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
at_exit 'kill -s KILL $TGTD 2>/dev/null'
dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_up
login_lun1 "$PORTAL" "$IQN"
mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 on $dev failed"
mount "$dev" "$MNT" || die "mount $dev on $MNT failed"
at_exit "umount -l $MNT 2>/dev/null"
lunlinkctl logout "$IQN" >"$VM_TMP/out" 2>&1
rc=$?
check "lunlinkctl logout is refused while $dev is mounted (exit $rc)" test "$rc" -ne 0
grep -q "mounted on $MNT" "$VM_TMP/out" || { cat "$VM_TMP/out"; fail "the refusal does not say mounted on $MNT"; }

# The page's bridge: cockpit-bridge on the virtio port (opened once, read-write: a port takes
# one opener), with lunlink's package and the bus.
mkdir -p "$VM_TMP/xdg/cockpit" "$VM_TMP/home" "$VM_TMP/run"
cp -r /src/cockpit/dist "$VM_TMP/xdg/cockpit/lunlink"
XDG_DATA_HOME=$VM_TMP/xdg HOME=$VM_TMP/home XDG_RUNTIME_DIR=$VM_TMP/run \
    DBUS_SESSION_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS \
    cockpit-bridge 0<>"$port" 1>&0 2>"$VM_TMP/cockpit-bridge.log" &
BRIDGE=$!
at_exit "kill $BRIDGE 2>/dev/null"
echo "COCKPIT-BRIDGE: ready $IQN $dev"

# The host's browser now disconnects the session through the page, forced after the InUse
# refusal; the host prints its own PASS/FAIL lines. Here: the session and the device go.
gone() { out=$(lunlinkctl --no-legend sessions) && ! echo "$out" | grep -q "$IQN"; }
if wait_for 240 gone; then
    pass "the page's 'Disconnect anyway' logged the session out while $dev was mounted"
else
    lunlinkctl sessions
    die "the session is still there 240 s after the bridge came up"
fi
check "and no LUN is left in lunlinkctl luns" sh -c "out=\$(lunlinkctl --no-legend luns) && ! echo \"\$out\" | grep -q ublkb"
