#!/bin/bash
# Before the reboots: the node logs in at boot (startup automatic) and /etc/fstab mounts its
# partition by its stable name with _netdev,nofail; data written there is checked after each
# reboot (system-5-rebooted, system-6-rebooted-again).
# boot: 1
# timeout: 120
. /vm/lib.sh
. /vm/system-lib.sh

path=$BY_PATH-part1
lunlinkctl node update "$IQN" --startup automatic || die "lunlinkctl node update --startup automatic failed"
check "the node's startup is automatic" sh -c "lunlinkctl node show '$IQN' | grep -q automatic"
mkdir -p /srv/data
echo "$path /srv/data ext4 _netdev,nofail 0 2" >>/etc/fstab
systemctl daemon-reload
systemctl start srv-data.mount || die "systemctl start srv-data.mount failed"
check "/srv/data is mounted from $path" test "$(findmnt -n -o SOURCE /srv/data)" = "$(readlink -f "$path")"
head -c 8388608 /dev/urandom >/srv/data/payload
md5sum </srv/data/payload | cut -d' ' -f1 >/var/lib/lunlink-vm/payload.md5
sync
pass "8 MiB written to /srv/data/payload ($(cat /var/lib/lunlink-vm/payload.md5))"
