#!/bin/bash
# `apt-get remove lunlink` with no session left: the service is stopped and disabled, no
# lunlinkd process is left, the binaries are gone.
# boot: 3
# timeout: 180
. /vm/lib.sh
. /vm/system-lib.sh

umount /srv/data || die "unmounting /srv/data failed"
sed -i '\|/srv/data|d' /etc/fstab
systemctl daemon-reload
lunlinkctl logout --all || die "lunlinkctl logout --all failed"
check "no session is left" test -z "$(lunlinkctl --no-legend sessions)"
if apt-get remove -y -q lunlink >"$VM_TMP/apt.log" 2>&1; then
    pass "apt-get remove lunlink"
else
    cat "$VM_TMP/apt.log"
    die "apt-get remove lunlink failed"
fi
check "lunlinkd.service is not active after the removal" sh -c '! systemctl -q is-active lunlinkd.service'
check "no lunlinkd process is left" sh -c '! pgrep -x lunlinkd'
check "/usr/sbin/lunlinkd and /usr/bin/lunlinkctl are gone" test ! -e /usr/sbin/lunlinkd -a ! -e /usr/bin/lunlinkctl
check "no ublk device is left" sh -c '! ls /dev/ublkb* 2>/dev/null'
