#!/bin/bash
# After a reboot: the automatic node logged in at boot and the fstab line mounted /srv/data
# with the data intact; the boot before shut down cleanly: /srv/data was unmounted before
# lunlinkd stopped, lunlinkd stopped within its time (no SIGKILL) and no task hung.
# boot: 2
# timeout: 180
. /vm/lib.sh
. /vm/system-lib.sh

wait_for 120 mountpoint -q /srv/data
check "/srv/data is mounted at boot ($(findmnt -n -o SOURCE /srv/data))" mountpoint -q /srv/data
check "lunlinkd.service is active" systemctl -q is-active lunlinkd.service
check "the payload written before the reboot is intact" \
    test "$(md5sum </srv/data/payload | cut -d' ' -f1)" = "$(cat /var/lib/lunlink-vm/payload.md5)"
figure "system-vm boot_$(cat /var/lib/lunlink-vm/boot)_data_mounted_s=$(cut -d' ' -f1 /proc/uptime)"

journalctl -b -1 -o short-unix --no-pager >"$VM_TMP/prev.log" 2>&1
# The shutdown: the last unmount of /srv/data and the last stop of lunlinkd in that boot.
umounted=$(awk '/Unmounted srv-data.mount/ {t = $1} END {print t}' "$VM_TMP/prev.log")
stopping=$(awk '/Stopping lunlinkd.service/ {t = $1} END {print t}' "$VM_TMP/prev.log")
stopped=$(awk '/Stopped lunlinkd.service/ {t = $1} END {print t}' "$VM_TMP/prev.log")
check "the previous shutdown unmounted /srv/data (at $umounted) before lunlinkd stopped (at $stopping)" \
    awk -v u="${umounted:-}" -v s="${stopping:-}" 'BEGIN { exit !(u != "" && s != "" && u + 0 <= s + 0) }'
figure "system-vm boot_$(( $(cat /var/lib/lunlink-vm/boot) - 1 ))_lunlinkd_stop_s=$(awk -v a="$stopping" -v b="$stopped" 'BEGIN {printf "%.1f", b - a}')"
# (The daemon's own "logging out" line may reach the journal just before systemd's "Stopping".)
awk -v t="$stopping" '$1 + 0 >= t - 2' "$VM_TMP/prev.log" >"$VM_TMP/shutdown.log"
check "lunlinkd stopped without being killed at the previous shutdown" \
    sh -c "! grep -E 'lunlinkd.service: (State .stop-sigterm. timed out|Killing process|Failed with result)' '$VM_TMP/shutdown.log'"
check "lunlinkd logged out at the previous shutdown" grep -q "logging out of every session" "$VM_TMP/shutdown.log"
check "no hung task in the previous boot's kernel log" \
    sh -c "! journalctl -k -b -1 --no-pager | grep -q 'blocked for more than'"
check "no I/O error in the previous boot's kernel log" \
    sh -c "! journalctl -k -b -1 --no-pager | grep -qiE 'I/O error|EXT4-fs error'"
# New data for the next boot to check.
head -c 8388608 /dev/urandom >/srv/data/payload
md5sum </srv/data/payload | cut -d' ' -f1 >/var/lib/lunlink-vm/payload.md5
sync
