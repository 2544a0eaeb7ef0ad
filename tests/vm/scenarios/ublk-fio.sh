#!/bin/sh
# fio through our ublk device: 4K random writes at QD32 with verification must pass; then
# 4K random reads at QD32 on our device and on the kernel initiator's /dev/sdX for the same
# LUN of the same target, printed side by side (a comparison, not pass/fail; both initiators
# and the target share the guest's 2 emulated CPUs, so each gets two interleaved rounds and
# the better one counts).
# needs: tgtd tgtadm dbus-daemon fio iscsid iscsiadm
# timeout: 240
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:fio
PORTAL=127.0.0.1:3260
MIB=256
SECONDS_EACH=6

# randread DEV LABEL: fio 4K random read QD32 for SECONDS_EACH seconds; prints read IOPS.
randread() {
    fio --name=randread --filename="$1" --rw=randread --bs=4k --iodepth=32 --ioengine=libaio \
        --direct=1 --norandommap --runtime="$SECONDS_EACH" --time_based \
        --output-format=terse,normal >"$VM_TMP/fio-$2.out" 2>&1 || return 1
    grep -E 'IOPS=|clat \(' "$VM_TMP/fio-$2.out" | sed "s/^/$2: /" >&2
    # Terse format v3: field 8 is read IOPS.
    awk -F';' '/^3;/ {print $8}' "$VM_TMP/fio-$2.out"
}

tgtd_start 1 "$PORTAL"
make_file "$VM_TMP/lun1.img" "$MIB"
tgt_target 1 1 "$IQN" || die "tgtadm could not create target $IQN"
tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"

dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_up
login_lun1 "$PORTAL" "$IQN"

# Random writes with verification: every block read back must carry its own checksum.
fio --name=verify --filename="$dev" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
    --direct=1 --size=64m --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output-format=terse,normal >"$VM_TMP/fio-verify.out" 2>&1
rc=$?
grep -v '^3;' "$VM_TMP/fio-verify.out"
# Terse v3: field 49 is write IOPS; field 5 is the job's error number.
werr=$(awk -F';' '/^3;/ {print $5}' "$VM_TMP/fio-verify.out")
wiops=$(awk -F';' '/^3;/ {print $49}' "$VM_TMP/fio-verify.out")
if [ "$rc" -eq 0 ] && [ "$werr" = 0 ]; then
    pass "fio 4k random write QD32 with crc32c verify over 64 MiB of $dev passes"
    figure "ublk randwrite4k_qd32_verify_iops=$wiops"
else
    fail "fio 4k random write QD32 with verify on $dev failed (exit $rc, error ${werr:-?})"
fi

# The same LUN through the kernel's initiator, for the comparison.
iscsid_start
iscsiadm -m discovery -t sendtargets -p "$PORTAL" >/dev/null || die "iscsiadm discovery failed"
iscsiadm -m node -T "$IQN" -p "$PORTAL" --login >/dev/null || die "iscsiadm login to $IQN failed"
at_exit "iscsiadm -m node -T $IQN -p $PORTAL --logout >/dev/null 2>&1"
wait_for 30 iscsi_disk 1 || die "no SCSI disk appeared for LUN 1 within 30 s of iscsiadm login"
sdev=$(iscsi_disk 1)
note "kernel initiator: $sdev, lunlink: $dev (same LUN)"

# best A B: the larger of two IOPS figures (either may be empty after a failed run).
best() { if [ "${1:-0}" -ge "${2:-0}" ]; then echo "${1:-}"; else echo "$2"; fi; }
ours=""
kern=""
for round in 1 2; do
    o=$(randread "$dev" "ublk$round")
    k=$(randread "$sdev" "kernel$round")
    note "round $round: 4k random read QD32: lunlink $dev ${o:-failed} IOPS, kernel $sdev ${k:-failed} IOPS"
    ours=$(best "$ours" "$o")
    kern=$(best "$kern" "$k")
done
if [ -n "$ours" ] && [ "$ours" -gt 0 ]; then
    pass "fio 4k random read QD32 on $dev ran"
    figure "ublk randread4k_qd32_iops=$ours"
else
    fail "fio 4k random read QD32 on $dev failed"
fi
if [ -n "$kern" ] && [ "$kern" -gt 0 ]; then
    figure "kernel-same-target randread4k_qd32_iops=$kern"
    [ -n "$ours" ] && figure "ublk-vs-kernel randread4k_qd32_percent=$((ours * 100 / kern))"
else
    note "fio on the kernel initiator's $sdev failed; no comparison"
fi

iscsiadm -m node -T "$IQN" -p "$PORTAL" --logout >/dev/null 2>&1
lunlinkctl logout "$IQN" || fail "logout from $IQN failed"
wait_for 15 sh -c "! test -e /sys/block/${dev#/dev/}"
check "logout removes $dev" sh -c "! test -e /sys/block/${dev#/dev/}"
