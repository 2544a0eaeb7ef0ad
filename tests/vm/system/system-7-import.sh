#!/bin/bash
# Coming from open-iscsi: node records written by the real iscsiadm (`-m node -o new` and
# `-o update`, CHAP included) are imported by `lunlinkctl import open-iscsi`: --dry-run
# changes nothing, the import creates the new node with its settings and CHAP secret, keeps
# the node lunlink already has untouched, prints no secret; a login through the imported node
# (CHAP) gives a block device.
# boot: 3
# timeout: 240
. /vm/lib.sh
. /vm/system-lib.sh

IQN2=iqn.2024-01.org.lunlink.vm:imported
truncate -s 64M /var/lib/lunlink-vm/lun2.img
tgtadm --lld iscsi --op new --mode target --tid 9 -T "$IQN2" || die "tgtadm: new target $IQN2"
tgtadm --lld iscsi --op new --mode logicalunit --tid 9 --lun 1 -b /var/lib/lunlink-vm/lun2.img || die "tgtadm: LUN"
tgtadm --lld iscsi --op bind --mode target --tid 9 -I ALL
tgtadm --lld iscsi --op new --mode account --user importer --password import-secret-42
tgtadm --lld iscsi --op bind --mode account --tid 9 --user importer
at_exit "tgtadm --lld iscsi --op delete --mode target --tid 9 --force"

# iscsiadm keeps records without iscsid running; its complaints about iscsid are expected.
iscsi() { iscsiadm "$@" >>"$VM_TMP/iscsiadm.log" 2>&1; }
iscsi -m node -o new -T "$IQN2" -p 127.0.0.1:3260 || die "iscsiadm -m node -o new $IQN2 failed"
for kv in node.startup=automatic node.session.auth.authmethod=CHAP node.session.auth.username=importer \
    node.session.auth.password=import-secret-42 node.conn[0].iscsi.HeaderDigest=None \
    node.session.timeo.replacement_timeout=30; do
    iscsi -m node -T "$IQN2" -p 127.0.0.1:3260 -o update -n "${kv%%=*}" -v "${kv#*=}" ||
        die "iscsiadm -o update ${kv%%=*} failed"
done
# A record for the node lunlink already has (system-2-login): it must stay as it is.
iscsi -m node -o new -T "$IQN" -p 127.0.0.1:3260 || die "iscsiadm -m node -o new $IQN failed"
iscsi -m node -T "$IQN" -p 127.0.0.1:3260 -o update -n node.startup -v manual
pass "iscsiadm wrote $(find /etc/iscsi/nodes -type f | wc -l) node records"

before=$(lunlinkctl --no-legend nodes | wc -l)
lunlinkctl import open-iscsi --dry-run >"$VM_TMP/dry.out" 2>&1 || { cat "$VM_TMP/dry.out"; fail "import --dry-run failed"; }
cat "$VM_TMP/dry.out"
check "--dry-run would import $IQN2" grep -q "would-import $IQN2 127.0.0.1:3260" "$VM_TMP/dry.out"
check "--dry-run changed nothing" test "$(lunlinkctl --no-legend nodes | wc -l)" -eq "$before"

lunlinkctl import open-iscsi >"$VM_TMP/import.out" 2>&1 || { cat "$VM_TMP/import.out"; fail "lunlinkctl import open-iscsi failed"; }
cat "$VM_TMP/import.out"
check "the import took $IQN2 with startup and CHAP" \
    grep -q "imported $IQN2 127.0.0.1:3260 (tpgt 1): startup automatic, CHAP" "$VM_TMP/import.out"
check "the node lunlink had is skipped" grep -q "skipped $IQN 127.0.0.1:3260" "$VM_TMP/import.out"
check "... and keeps its startup (automatic, not the record's manual)" \
    sh -c "lunlinkctl node show '$IQN' | grep -q 'Startup: automatic'"
check "the replacement timeout is taken into the node record (replacement = 30)" \
    sh -c "grep -l '$IQN2' /var/lib/lunlink/nodes/* | xargs grep -q 'replacement = 30'"
check "the imported node has the CHAP username" sh -c "lunlinkctl node show '$IQN2' | grep -q 'Username: importer'"
check "no secret in the import's output" sh -c "! grep -q import-secret-42 '$VM_TMP/import.out' '$VM_TMP/dry.out'"

lunlinkctl login "$IQN2" >"$VM_TMP/login.out" 2>&1 || { cat "$VM_TMP/login.out"; fail "login through the imported node failed"; }
dev2=$(lunlinkctl --json luns | tr -d ' \n' | grep -o "\"lun\":1,[^}]*\"target\":\"$IQN2\"" | grep -o '"device":"/dev/ublkb[0-9]*"' | cut -d'"' -f4)
check "a CHAP login through the imported node gives a block device (${dev2:-none})" test -b "${dev2:-/nonexistent}"
lunlinkctl logout "$IQN2" || fail "logout from $IQN2 failed"
check "no secret in lunlinkd's journal" sh -c "! journalctl -u lunlinkd --no-pager | grep -q import-secret-42"
rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets
