#!/bin/sh
# Sessions survive target crashes: fio 4k random writes at QD32 with crc32c verify run on
# /dev/ublkbN while tgtd is killed (SIGKILL) and started again 5 times, each outage well within
# the replacement timeout (default 120 s). The session reconnects each time, IO waits and is
# reissued; fio exits 0 with its verify clean and the kernel logs no I/O error.
# needs: tgtd tgtadm dbus-daemon fio dmesg
# timeout: 240
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:tgtrestart
PORTAL=127.0.0.1:3260
CYCLES=5


make_file "$VM_TMP/lun1.img" 128
tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
at_exit 'kill -s KILL $TGTD 2>/dev/null'

dbus_start
mkdir -p "$VM_TMP/state"
: >"$VM_TMP/lunlink.toml"
lunlinkd_up
login_lun1 "$PORTAL" "$IQN"
dmesg -c >/dev/null

# Write-rate limited so the write phase outlasts the five outages on any machine speed; the
# verify reads that follow are not limited.
fio --name=tgtcrash --filename="$dev" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
    --direct=1 --size=96m --rate_iops=,1000 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --output-format=terse,normal >"$VM_TMP/fio.out" 2>&1 &
FIO=$!
at_exit "kill $FIO 2>/dev/null"

done_cycles=0
longest=0
i=1
while [ "$i" -le "$CYCLES" ]; do
    base=$(writes "$dev")
    wait_for 60 progressed "$dev" $((base + 300)) || { fail "no IO progress on $dev before outage $i"; break; }
    alive "$FIO" || { fail "fio ended before outage $i"; break; }
    kill -s KILL "$TGTD"
    wait "$TGTD" 2>/dev/null
    down_at=$(now_ms)
    tgt_one "$PORTAL" "$IQN" "$VM_TMP/lun1.img"
    at=$(writes "$dev")
    wait_for 60 progressed "$dev" $((at + 1)) || { fail "IO on $dev did not resume within 60 s of target restart $i"; break; }
    took=$(( $(now_ms) - down_at ))
    [ "$took" -gt "$longest" ] && longest=$took
    note "outage $i: IO resumed ${took} ms after tgtd was killed"
    done_cycles=$i
    i=$((i + 1))
done
check "IO resumed after each of $CYCLES tgtd kills and restarts" test "$done_cycles" -eq "$CYCLES"
figure "ublk-target-restart longest_outage_ms=$longest"

wait_for 200 sh -c "! kill -0 $FIO 2>/dev/null"
fio_result "$FIO" "$VM_TMP/fio.out"
if [ "$rc" -eq 0 ] && [ "$err" = 0 ]; then
    pass "fio 4k random write QD32 with crc32c verify on $dev passes across $CYCLES target restarts"
else
    fail "fio across target restarts failed (exit $rc, error ${err:-?})"
fi
dmesg >"$VM_TMP/dmesg.txt"
if grep -qiE "I/O error|Buffer I/O" "$VM_TMP/dmesg.txt"; then
    grep -iE "I/O error|Buffer I/O" "$VM_TMP/dmesg.txt" | head -5
    fail "the kernel logged I/O errors across the target restarts"
else
    pass "no I/O error in dmesg across $CYCLES target restarts"
fi
check "the session is logged in after the outages" sh -c "lunlinkctl --no-legend sessions | grep -q logged-in"
lunlinkctl logout "$IQN" || fail "logout from $IQN failed"
