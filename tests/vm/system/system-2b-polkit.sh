#!/bin/bash
# Who may do what, with the real polkitd: user alice (not root) reads everything and is refused
# every change (exit 9, the message names the action, nothing changed); after the README's
# rules file is installed and alice joins the group lunlink, she can discover, log in, use the
# device (root mounts it) and log out. A second target keeps system-2-login's session alone.
# boot: 1
# timeout: 240
. /vm/lib.sh
. /vm/system-lib.sh

IQN2=iqn.2024-01.org.lunlink.vm:alice
id alice >/dev/null 2>&1 || useradd -m alice || die "useradd alice failed"
as_alice() { runuser -u alice -- lunlinkctl --no-ask-password "$@"; }

truncate -s 64M /var/lib/lunlink-vm/alice.img
tgtadm --lld iscsi --op new --mode target --tid 2 -T "$IQN2" || die "tgtadm could not make $IQN2"
tgtadm --lld iscsi --op new --mode logicalunit --tid 2 --lun 1 -b /var/lib/lunlink-vm/alice.img ||
    die "tgtadm could not add the LUN of $IQN2"
tgtadm --lld iscsi --op bind --mode target --tid 2 -I ALL || die "tgtadm bind failed"
at_exit "tgtadm --lld iscsi --op delete --mode target --tid 2 --force"

check "pkaction shows org.lunlink.initiator1.login" \
    sh -c 'pkaction --action-id org.lunlink.initiator1.login --verbose | grep -q "implicit active"'
pkaction --action-id org.lunlink.initiator1.login --verbose

# Reads are open.
for verb in status nodes sessions luns lus "--json nodes"; do
    check "alice may read: lunlinkctl $verb" as_alice $verb
done

# Changes are refused, each naming its action, and change nothing.
nodes_before=$(lunlinkctl --json nodes | tr -d ' \n')
refused() { # refused ACTION ARGS...
    _action=$1; shift
    out=$(as_alice "$@" 2>&1); rc=$?
    echo "alice: lunlinkctl $* -> $rc: $out"
    check "alice is refused 'lunlinkctl $*' with exit 9 naming $_action" \
        sh -c 'test "$1" -eq 9 && case "$2" in *"$3"*) ;; *) exit 1 ;; esac' - "$rc" "$out" "$_action"
}
refused org.lunlink.initiator1.discover discover 127.0.0.1
refused org.lunlink.initiator1.login login "$IQN"
refused org.lunlink.initiator1.logout logout "$IQN"
refused org.lunlink.initiator1.manage-nodes node create "$IQN2" 127.0.0.1:3260
refused org.lunlink.initiator1.manage-nodes node update "$IQN" --startup automatic
refused org.lunlink.initiator1.manage-auth set-default-auth session --auth-method none
check "nothing changed: the node records are as before" test "$(lunlinkctl --json nodes | tr -d ' \n')" = "$nodes_before"
check "nothing changed: the session of $IQN is still logged in" \
    sh -c "lunlinkctl --json sessions | tr -d ' \n' | grep -q '\"target\":\"$IQN\",[^}]*\"state\":\"logged-in\"'"

# The README's rules file and the group: alice may do everything.
groupadd -f lunlink
usermod -aG lunlink alice
install -m 0644 /usr/share/doc/lunlink/examples/50-lunlink-group.rules.example /etc/polkit-1/rules.d/50-lunlink.rules ||
    die "the example rules file is not in the package"
at_exit "rm -f /etc/polkit-1/rules.d/50-lunlink.rules"
allowed() { as_alice discover 127.0.0.1 >/dev/null 2>&1; }
wait_for 20 allowed || { journalctl -u polkit --no-pager | tail -5; die "polkitd did not take the rules file"; }
pass "alice in group lunlink may discover"
check "alice logs in to $IQN2" as_alice login "$IQN2"
dev=$(lunlinkctl --no-legend luns | awk -v t="$IQN2" '$1 == t && $2 == 1 { for (i = 3; i <= NF; i++) if ($i ~ /^\/dev\/ublkb/) print $i }')
check "alice's login gives a block device ($dev)" test -b "$dev"
used() { mkfs.ext4 -q -F "$dev" && mkdir -p /mnt/alice && mount "$dev" /mnt/alice &&
    echo hello >/mnt/alice/f && sync && umount /mnt/alice; }
check "root mounts and uses alice's device" used
check "alice logs out of $IQN2" as_alice logout "$IQN2"
check "the session of $IQN is still logged in" \
    sh -c "lunlinkctl --json sessions | tr -d ' \n' | grep -q '\"target\":\"$IQN\"'"
lunlinkctl node delete "$IQN2" >/dev/null 2>&1
