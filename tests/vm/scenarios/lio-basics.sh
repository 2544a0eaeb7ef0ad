#!/bin/sh
# lunlink against Linux LIO, the kernel's own iSCSI target (the default target of the other
# scenarios is tgtd): discovery; a target that insists on CRC32C header and data digests (a login
# that does not offer them fails with words that name them, one that does gets them); data
# written through the ublk device lands byte for byte in LIO's backing file and reads back, with
# digests on; ext4 survives logout and login; CHAP one-way and mutual against LIO's own CHAP
# (wrong or missing credentials fail as AuthenticationFailed, a target that cannot prove itself
# is refused).
# needs: dbus-daemon dd mkfs.ext4
# modules: configfs target_core_mod target_core_file iscsi_target_mod
# timeout: 240
. /vm/lib.sh
require lunlinkd lunlinkctl

IQN=iqn.2024-01.org.lunlink.vm:lio-plain
CHAP_IQN=iqn.2024-01.org.lunlink.vm:lio-chap
P1=127.0.0.1:3260
P2=127.0.0.1:3261
MIB=64
MNT=/mnt/lio

lio_start
lio_backstore plain "$MIB"
lio_tpg "$IQN" 1 "$P1" plain
TPG=$LIO/iscsi/$IQN/tpgt_1
echo CRC32C >"$TPG/param/HeaderDigest" && echo CRC32C >"$TPG/param/DataDigest" ||
    die "cannot make LIO insist on CRC32C digests"
lio_enable "$IQN" 1
lio_backstore chap 16
lio_tpg "$CHAP_IQN" 1 "$P2" chap
CTPG=$LIO/iscsi/$CHAP_IQN/tpgt_1
# (printf: LIO keeps a trailing newline as part of a CHAP name or secret.)
echo 1 >"$CTPG/attrib/authentication" && printf lunlink-user >"$CTPG/auth/userid" &&
    printf lunlink-secret-1 >"$CTPG/auth/password" || die "cannot set CHAP on $CHAP_IQN"
lio_enable "$CHAP_IQN" 1

dbus_start
mkdir -p "$VM_TMP/state"
lunlinkd_up

# --- discovery, digests ------------------------------------------------------------------------
out=$(lunlinkctl discover "$P1" 2>&1)
echo "$out"
echo "$out" | grep -q "$IQN" || die "lunlinkctl discover $P1 did not find $IQN on LIO"
pass "SendTargets discovery on LIO finds $IQN"

out=$(lunlinkctl node update "$IQN" --header-digest none --data-digest none 2>&1 &&
    lunlinkctl login "$IQN" 2>&1)
rc=$?
echo "$out"
check "a login without digests to a target that insists on them fails (exit $rc)" test "$rc" -ne 0
case "$out" in *[Dd]igest*) pass "and the error names the digests" ;; *) fail "the error does not name the digests" ;; esac
lunlinkctl node update "$IQN" --header-digest crc32c --data-digest crc32c >/dev/null ||
    die "node update --header-digest crc32c failed"
lunlinkctl login "$IQN" >/dev/null || die "login to $IQN with CRC32C digests failed"
params=$(lunlinkctl --json sessions | tr -d ' \n')
case "$params" in
*'"HeaderDigest":"CRC32C"'*'"DataDigest":"CRC32C"'* | *'"DataDigest":"CRC32C"'*'"HeaderDigest":"CRC32C"'*)
    pass "the session runs with CRC32C header and data digests" ;;
*) echo "$params"; fail "the session does not show CRC32C header and data digests" ;;
esac
dev=$(dev_of 0)
[ -b "$dev" ] || { lunlinkctl --json luns; die "LUN 0 of $IQN got no block device"; }
check "$dev has the LU's $MIB MiB" test "$(($(cat "/sys/block/${dev#/dev/}/size") * 512))" -eq $((MIB << 20))

# --- data path -----------------------------------------------------------------------------------
dd if=/dev/urandom of="$VM_TMP/pattern" bs=1M count=8 2>/dev/null
want=$(md5 <"$VM_TMP/pattern")
dd if="$VM_TMP/pattern" of="$dev" bs=1M seek=4 oflag=direct conv=fsync 2>/dev/null ||
    fail "O_DIRECT write of 8 MiB to $dev failed"
check "8 MiB written through $dev land byte for byte in LIO's backing file" \
    test "$(dd if="$VM_TMP/lio-plain.img" bs=1M skip=4 count=8 2>/dev/null | md5)" = "$want"
check "and read back the same through $dev (O_DIRECT)" \
    test "$(dd if="$dev" bs=1M skip=4 count=8 iflag=direct 2>/dev/null | md5)" = "$want"
mkfs.ext4 -q -F "$dev" || die "mkfs.ext4 on $dev failed"
mkdir -p "$MNT"
at_exit "umount $MNT 2>/dev/null"
mount "$dev" "$MNT" || die "mount $dev failed"
cp "$VM_TMP/pattern" "$MNT/pattern" && sync
umount "$MNT" || die "umount failed"
lunlinkctl logout "$IQN" >/dev/null || die "logout from $IQN failed"
lunlinkctl login "$IQN" >/dev/null || die "second login to $IQN failed"
dev=$(dev_of 0)
mount "$dev" "$MNT" || die "mount $dev after the new login failed"
check "a file on ext4 is intact after logout and login" test "$(md5 <"$MNT/pattern")" = "$want"
umount "$MNT"
lunlinkctl logout "$IQN" >/dev/null || fail "logout from $IQN failed"

# --- CHAP ---------------------------------------------------------------------------------------
lunlinkctl node create "$CHAP_IQN" "$P2" >/dev/null || die "node create $CHAP_IQN failed"
lunlinkctl login "$CHAP_IQN" >"$VM_TMP/out" 2>&1
rc=$?
cat "$VM_TMP/out"
check "a login without credentials to LIO requiring CHAP fails as AuthenticationFailed (exit $rc)" test "$rc" -eq 5
# creds USER SECRET [REVERSE-USER REVERSE-SECRET]: the node's CHAP credentials, from a 0600 file.
creds() {
    umask 077
    printf 'username=%s\npassword=%s\n' "$1" "$2" >"$VM_TMP/auth"
    [ -n "$3" ] && printf 'reverse-username=%s\nreverse-password=%s\n' "$3" "$4" >>"$VM_TMP/auth"
    lunlinkctl node update "$CHAP_IQN" --auth-file "$VM_TMP/auth" >/dev/null || die "node update --auth-file failed"
}
creds lunlink-user wrong-secret-99
lunlinkctl login "$CHAP_IQN" >"$VM_TMP/out" 2>&1
rc=$?
cat "$VM_TMP/out"
check "a wrong CHAP secret fails as AuthenticationFailed (exit $rc)" test "$rc" -eq 5
check "and the secret is not in the message" sh -c "! grep -q wrong-secret-99 '$VM_TMP/out'"
creds lunlink-user lunlink-secret-1
lunlinkctl login "$CHAP_IQN" >/dev/null || die "one-way CHAP login to LIO failed"
check "one-way CHAP against LIO logs in and gives a device" test -b "$(dev_of 0 | head -1)"
lunlinkctl logout "$CHAP_IQN" >/dev/null || fail "logout from $CHAP_IQN failed"
# LIO numbers CHAP algorithms as RFC 7143 does (7 is SHA-256, where tgtd takes 7 for SHA1).
for alg in sha256 md5; do
    lunlinkctl node update "$CHAP_IQN" --chap-algorithms "$alg" >/dev/null || die "node update --chap-algorithms $alg failed"
    if lunlinkctl login "$CHAP_IQN" >/dev/null; then
        pass "one-way CHAP with $alg only logs in to LIO"
        lunlinkctl logout "$CHAP_IQN" >/dev/null || fail "logout from $CHAP_IQN failed"
    else
        fail "one-way CHAP with $alg only does not log in to LIO"
    fi
done
lunlinkctl node update "$CHAP_IQN" --chap-algorithms sha256,sha1,md5 >/dev/null || die "node update --chap-algorithms failed"

printf lunlink-target >"$CTPG/auth/userid_mutual" && printf lunlink-target-secret >"$CTPG/auth/password_mutual" ||
    die "cannot set mutual CHAP on $CHAP_IQN"
creds lunlink-user lunlink-secret-1 lunlink-target lunlink-target-secret
lunlinkctl login "$CHAP_IQN" >/dev/null || die "mutual CHAP login to LIO failed"
pass "mutual CHAP against LIO logs in"
lunlinkctl logout "$CHAP_IQN" >/dev/null || fail "logout from $CHAP_IQN failed"
creds lunlink-user lunlink-secret-1 lunlink-target not-the-target-secret
lunlinkctl login "$CHAP_IQN" >"$VM_TMP/out" 2>&1
rc=$?
cat "$VM_TMP/out"
check "a target whose mutual CHAP answer is wrong is refused (exit $rc)" test "$rc" -eq 5
check "and no session is left" sh -c "! lunlinkctl --no-legend sessions | grep -q '$CHAP_IQN'"
