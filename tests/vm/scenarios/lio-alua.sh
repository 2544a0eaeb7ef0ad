#!/bin/sh
# ALUA against Linux LIO, the kernel's own iSCSI target: one file-backed LU exported through two
# target portal groups (127.0.0.1:3260 and 127.0.0.2:3260) that sit in two ALUA target port
# groups, A active/optimized and B standby. lunlink must see both paths as one device, send IO
# only through A, and, when the states are flipped in configfs while fio writes with crc32c
# verification, move the IO to the newly optimized group within 2 s with no error. The second
# flip leaves no group active for 1 s (IO waits), then makes A optimized again; the third takes
# A to non-optimized through a 2 s transition (NOT READY 04/0A meanwhile).
# Figures: how long IO took to reach the new optimized path after each flip.
# needs: dbus-daemon fio
# modules: configfs target_core_mod target_core_file iscsi_target_mod
# timeout: 300
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:lio-alua
A=127.0.0.1:3260
B=127.0.0.2:3260
MIB=64

# --- LIO through configfs ------------------------------------------------------------------
lio_start
lio_backstore lu "$MIB"
D=$LIO/core/fileio_0/lu
for g in a:1 b:2; do
    mkdir -p "$D/alua/grp_${g%:*}" && echo "${g#*:}" >"$D/alua/grp_${g%:*}/tg_pt_gp_id" ||
        die "cannot create ALUA group ${g%:*}"
done
lio_tpg "$IQN" 1 "$A" lu
lio_tpg "$IQN" 2 "$B" lu
echo grp_a >"$LIO/iscsi/$IQN/tpgt_1/lun/lun_0/alua_tg_pt_gp" &&
    echo grp_b >"$LIO/iscsi/$IQN/tpgt_2/lun/lun_0/alua_tg_pt_gp" || die "cannot put the ports in ALUA groups"
# alua GROUP STATE: set a group's access state (0 active/optimized, 2 standby), as an array
# would on a controller failover.
alua() { echo "$2" >"$D/alua/grp_$1/alua_access_state"; }
alua a 0 && alua b 2 || die "cannot set the ALUA states"
lio_enable "$IQN" 1
lio_enable "$IQN" 2
pass "LIO exports one LU through $A (ALUA group a, active/optimized) and $B (group b, standby)"

# --- lunlink -----------------------------------------------------------------------------------
export RUST_LOG=info,lunlink_multipath=debug
dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_up
lunlinkctl node create "$IQN" "$A" >/dev/null || die "node create $A failed"
lunlinkctl node create "$IQN" "$B" >/dev/null || die "node create $B failed"
# The standby portal alone first: no path may carry IO, so the kernel's partition scan at the
# device's start waits a few seconds, not the no-path timeout, and the login returns.
t0=$(now_ms)
lunlinkctl login "$IQN" --portal "$B" >/dev/null || { tail -20 "$VM_TMP/lunlinkd.log"; die "login to $IQN on $B failed"; }
ms=$(($(now_ms) - t0))
figure "lio-alua standby_only_login_ms=$ms"
check "a login to the standby portal alone returns within 15 s ($ms ms)" test "$ms" -le 15000
lunlinkctl login "$IQN" --portal "$A" >/dev/null || { tail -20 "$VM_TMP/lunlinkd.log"; die "login to $IQN on $A failed"; }
# That partition scan failed with I/O errors, as it should; from here on none is expected.
dmesg -c >/dev/null

# alua_of PORTAL / path_of PORTAL: the path's ALUA access state and PathState in lus --json.
lus_path() { lunlinkctl --json lus | tr -d ' \n' | grep -o "\"portal\":\"$1\",\"lun\":0,[^}]*"; }
alua_of() { lus_path "$1" | sed -n 's/.*"access_state":"\([a-z/-]*\)".*/\1/p'; }
path_of() { lus_path "$1" | sed -n 's/.*"state":"\([a-z-]*\)".*/\1/p'; }
# cmds PORTAL: SCSI commands its session has sent.
cmds() { lunlinkctl --json sessions | tr -d ' \n' | grep -o "\"portal\":\"$1\".*" | grep -o '"commands":[0-9]*' | head -1 | cut -d: -f2; }
states_are() { test "$(alua_of $A)/$(path_of $A) $(alua_of $B)/$(path_of $B)" = "$1"; }

wait_for 30 states_are "active/optimized/active standby/standby" ||
    { lunlinkctl lus; lunlinkctl --json lus; die "the paths did not show ALUA states A optimized, B standby"; }
lunlinkctl lus
dev=$(dev_of 0 | sort -u)
check "two ALUA paths give one block device ($dev)" test "$(echo "$dev" | wc -l)" -eq 1 -a -b "$dev"
check "lus shows the target port groups" sh -c "lunlinkctl --no-legend lus | grep -q 'standby (group 2)'"

fio_start alua 45
at_exit "kill $FIO 2>/dev/null"
wait_for 20 progressed "$dev" 2000 || die "fio made no progress"

# IO only through the optimized path.
a0=$(cmds $A); b0=$(cmds $B)
wait_for 20 progressed "$dev" $(($(writes "$dev") + 3000)) || die "fio stalled before the flip"
a1=$(cmds $A); b1=$(cmds $B)
note "commands before the flip: A +$((a1 - a0)), B +$((b1 - b0))"
check "IO goes only through the active/optimized path (A +$((a1 - a0)), B +$((b1 - b0)))" \
    test $((a1 - a0)) -ge 1000 -a $((b1 - b0)) -le 2

# moved_to PORTAL N: the path's session sent N more commands than $BASE.
moved_to() { test $(($(cmds "$1") - BASE)) -ge "$2"; }

# Flip 1: B becomes optimized, then A standby (a controller failover).
BASE=$(cmds $B)
t0=$(now_ms)
alua b 0 && alua a 2 || die "cannot flip the ALUA states"
wait_for 20 moved_to $B 200 || { lunlinkctl lus; die "IO did not move to B after the flip"; }
ms=$(($(now_ms) - t0))
figure "lio-alua flip_to_b_ms=$ms"
check "IO reaches the newly optimized path within 2 s of the flip ($ms ms)" test "$ms" -le 2000
wait_for 10 states_are "standby/standby active/optimized/active" ||
    { lunlinkctl lus; fail "the paths do not show A standby, B optimized"; }
a2=$(cmds $A)
wait_for 20 progressed "$dev" $(($(writes "$dev") + 2000)) || die "fio stalled after the flip"
a3=$(cmds $A)
check "no IO to the standby path after the flip (A +$((a3 - a2)))" test $((a3 - a2)) -le 2

# Flip 2: B goes standby first; for 1 s no group is active (IO waits), then A is optimized.
BASE=$(cmds $A)
alua b 2 || die "cannot set B standby"
sleep 1
t0=$(now_ms)
alua a 0 || die "cannot set A optimized"
wait_for 20 moved_to $A 200 || { lunlinkctl lus; die "IO did not come back to A"; }
ms=$(($(now_ms) - t0))
figure "lio-alua back_to_a_ms=$ms (after 1 s without an active group)"
check "IO reaches A within 2 s of A becoming optimized again ($ms ms)" test "$ms" -le 2000
wait_for 10 states_are "active/optimized/active standby/standby" ||
    { lunlinkctl lus; fail "the paths do not show A optimized, B standby again"; }

# Flip 3: A goes from active/optimized to active/non-optimized through a 2 s transition (LIO's
# trans_delay_msecs), B still standby: commands meet NOT READY 04/0A (in transition) and are
# retried until it settles, without an error.
echo 2000 >"$D/alua/grp_a/trans_delay_msecs" || die "cannot set a transition delay"
t0=$(now_ms)
alua a 1 &
TRANS=$!
wait_for 20 states_are "active/non-optimized/active standby/standby" ||
    { lunlinkctl lus; fail "the paths do not show A non-optimized after the transition"; }
wait "$TRANS" || fail "the transition to non-optimized failed in configfs"
figure "lio-alua transition_settled_ms=$(($(now_ms) - t0)) (2 s transition)"
w=$(writes "$dev")
wait_for 20 progressed "$dev" $((w + 1000)) || fail "IO did not go on through the non-optimized path"

fio_result "$FIO" "$VM_TMP/fio-alua.out"
figure "lio-alua longest_io_ms=$LAT_MS"
check "fio randwrite QD32 with crc32c verify across the three flips completes clean (exit $rc, error ${err:-?})" \
    test "$rc" -eq 0 -a "${err:-1}" = 0
check "no I/O errors in the kernel log" sh -c "! dmesg | grep -qiE 'I/O error|critical .* error'"
errs=$(lunlinkctl --json sessions | tr -d ' \n' | grep -o '"errors":[0-9]*' | awk -F: '{n += $2} END {print n + 0}')
note "failed commands counted by the sessions (NOT READY standby answers that moved): $errs"
# What the daemon said about the paths (ALUA state changes, moves).
grep -E 'ALUA|path' "$VM_TMP/lunlinkd.log" | tail -n 12 | sed 's/^/lunlinkd: /'
