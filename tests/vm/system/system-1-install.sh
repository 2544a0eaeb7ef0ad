#!/bin/bash
# The package as an admin installs it: `apt-get install ./lunlink_*.deb` (offline: its
# dependencies are in the image) enables and starts lunlinkd.service (Type=notify: active
# means READY=1 was sent), `lunlinkctl status` answers; after `systemctl stop lunlinkd` a
# D-Bus call to org.lunlink.Initiator1 starts it again (bus activation); the hardened unit's
# systemd-analyze exposure is at most 3.0; `man lunlinkctl` and bash completion work.
# boot: 1
# timeout: 300
. /vm/lib.sh

cd /vm/debs || die "no /vm/debs"
deb=$(ls lunlink_*_amd64.deb | head -n 1)
if apt-get install -y -q "./$deb" >"$VM_TMP/apt.log" 2>&1; then
    pass "apt-get install $(basename "$deb")"
else
    cat "$VM_TMP/apt.log"
    die "apt-get install $(basename "$deb") failed"
fi
check "lunlinkd.service is enabled" systemctl -q is-enabled lunlinkd.service
wait_for 60 systemctl -q is-active lunlinkd.service
check "lunlinkd.service is active after the install (Type=notify: READY=1 sent)" \
    systemctl -q is-active lunlinkd.service
check "lunlinkctl status answers" lunlinkctl status
note "$(grep ublk /proc/devices | tr '\n' ' ')"

out=$(systemd-analyze security lunlinkd.service 2>&1 | tail -n 1)
score=$(echo "$out" | sed -n 's/.*lunlinkd.service: \([0-9.]*\).*/\1/p')
figure "system-vm systemd_analyze_security_exposure=${score:-?}"
check "systemd-analyze security rates lunlinkd.service at most 3.0 ($out)" \
    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 3.0) }'

systemctl stop lunlinkd.service
check "systemctl stop lunlinkd: inactive" sh -c '! systemctl -q is-active lunlinkd.service'
if busctl call org.lunlink.Initiator1 /org/lunlink/Initiator1 org.freedesktop.DBus.Peer Ping \
    >"$VM_TMP/busctl.log" 2>&1; then
    pass "a D-Bus call to org.lunlink.Initiator1 is answered while the service was stopped"
else
    cat "$VM_TMP/busctl.log"
    fail "a D-Bus call to org.lunlink.Initiator1 failed after systemctl stop"
fi
check "the call activated lunlinkd.service" systemctl -q is-active lunlinkd.service
check "lunlinkctl status answers the activated daemon" lunlinkctl status

check "man lunlinkctl shows the login command" sh -c 'man -P cat lunlinkctl 2>/dev/null | grep -q "lunlinkctl login"'
check "man 5 lunlink.toml documents replacement" sh -c 'man -P cat 5 lunlink.toml 2>/dev/null | grep -q "replacement = 120"'
check "man 8 lunlinkd names the ublk module" sh -c 'man -P cat 8 lunlinkd 2>/dev/null | grep -q ublk_drv'
got=$(bash -c 'source /usr/share/bash-completion/bash_completion
    __load_completion lunlinkctl || exit 1
    COMP_WORDS=(lunlinkctl log); COMP_CWORD=1; COMP_LINE="lunlinkctl log"; COMP_POINT=${#COMP_LINE}
    _lunlinkctl lunlinkctl log lunlinkctl
    echo "${COMPREPLY[*]}"' 2>&1)
check "bash completion of 'lunlinkctl log<TAB>' offers login and logout (got: $got)" \
    sh -c "echo '$got' | grep -qw login && echo '$got' | grep -qw logout"
check "zsh and fish completions are installed" \
    test -f /usr/share/zsh/vendor-completions/_lunlinkctl -a -f /usr/share/fish/vendor_completions.d/lunlinkctl.fish
check "the Cockpit page is installed (/usr/share/cockpit/lunlink, menu label iSCSI Initiator)" \
    grep -q '"iSCSI Initiator"' /usr/share/cockpit/lunlink/manifest.json
check "polkit knows the package's actions (pkaction --action-id org.lunlink.initiator1.login)" \
    sh -c 'pkaction --action-id org.lunlink.initiator1.login --verbose | grep -q auth_admin'

# Without ublk: the service still runs and lunlinkctl status says why there are no block
# devices and what to do.
systemctl mask -q modprobe@ublk_drv.service
systemctl stop lunlinkd.service
modprobe -r ublk_drv || note "ublk_drv could not be unloaded"
systemctl start lunlinkd.service
check "lunlinkd.service starts without ublk_drv" systemctl -q is-active lunlinkd.service
line=$(lunlinkctl status | grep 'Block devices')
check "lunlinkctl status says to load the module ($line)" sh -c "echo '$line' | grep -q \"modprobe ublk_drv\""
systemctl unmask -q modprobe@ublk_drv.service
systemctl restart lunlinkd.service
check "after a restart the service loaded ublk_drv again (modprobe@ublk_drv.service)" test -c /dev/ublk-control
line=$(lunlinkctl status | grep 'Block devices')
check "lunlinkctl status: block devices available ($line)" sh -c "echo '$line' | grep -q available"
