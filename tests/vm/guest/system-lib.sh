# Helpers of the system VM's scenarios (bash), after /vm/lib.sh: `. /vm/system-lib.sh`.

# The target system-2-login keeps in /etc/tgt/conf.d (it survives reboots) and its LUN 1.
IQN=iqn.2024-01.org.lunlink.vm:system
BY_PATH=/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-$IQN-lun-1

# lun1_dev: LUN 1's block device (/dev/ublkbN) as lunlinkctl --json luns shows it, or nothing.
lun1_dev() {
    lunlinkctl --json luns 2>/dev/null | tr -d ' \n' | grep -o '"lun":1,[^}]*' |
        grep -o '"device":"/dev/ublkb[0-9]*"' | head -n 1 | cut -d'"' -f4
}
