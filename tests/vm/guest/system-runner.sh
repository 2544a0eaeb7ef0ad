#!/bin/bash
# The system VM's scenario runner (tests/vm/run builds the image): started at every boot by
# lunlink-vm.service (After=multi-user.target) with systemd as PID 1. Runs the scenarios of
# this boot from /vm/manifest ("name:seconds:boot" per line), then reboots when later boots
# have scenarios, else prints VM-RESULT and powers off. Same console protocol as /init of the
# busybox VM (tests/vm/README.md); state across boots lives in /var/lib/lunlink-vm.

exec </dev/null >/dev/ttyS0 2>&1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

state=/var/lib/lunlink-vm
mkdir -p "$state" /run/vm/results
boot=$(( $(cat "$state/boot" 2>/dev/null || echo 0) + 1 ))
echo "$boot" >"$state/boot"
sync

if grep -q 'lunlink.shell=1' /proc/cmdline; then
    echo "VM-INIT: interactive shell (boot $boot); scenarios are in /vm/scenarios"
    exec setsid -c bash -l <>/dev/ttyS0 >&0 2>&1
fi

echo "VM-INIT: started (system boot $boot, kernel $(uname -r), $(systemctl --version | head -n 1), $(nproc) CPUs)"
echo "FIGURE: system-vm boot_${boot}_userspace_ready_s=$(cut -d' ' -f1 /proc/uptime)"
state_of() { systemctl is-system-running 2>/dev/null; }
echo "note: system state $(state_of); failed units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"

failed=""
run_scenario() {
    name=$1 limit=$2
    echo "VM-SCENARIO: BEGIN $name (limit ${limit}s, boot $boot)"
    start=$(date +%s)
    # timeout(1) signals the scenario's whole process group, so its at_exit clean-up runs.
    VM_SCENARIO=$name timeout -k 5 "$limit" bash "/vm/scenarios/$name.sh"
    rc=$?
    end=$(date +%s)
    npass=0 nfail=0
    if [ -f "/run/vm/results/$name" ]; then
        npass=$(grep -c '^PASS' "/run/vm/results/$name")
        nfail=$(grep -c '^FAIL' "/run/vm/results/$name")
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL: $name: timed out after ${limit}s"
        nfail=$((nfail + 1))
    elif [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        echo "FAIL: $name: exited with status $rc without a FAIL line"
        nfail=$((nfail + 1))
    elif [ "$npass" -eq 0 ] && [ "$nfail" -eq 0 ]; then
        echo "FAIL: $name: printed no PASS or FAIL line"
        nfail=1
    fi
    if [ "$nfail" -gt 0 ]; then
        failed="$failed $name"
        echo "--- journal during $name (last 60 lines) ---"
        journalctl -b --since "@$start" --no-pager -q -o short-monotonic | tail -n 60 | sed 's/^/journal: /'
    fi
    echo "VM-SCENARIO: END $name status=$rc seconds=$((end - start))"
}

later=0
while IFS=: read -r -u 3 name limit when; do
    [ -n "$name" ] || continue
    if [ "$when" -eq "$boot" ]; then
        run_scenario "$name" "$limit"
    elif [ "$when" -gt "$boot" ]; then
        later=1
    fi
done 3</vm/manifest

[ -n "$failed" ] && echo " $failed" >>"$state/failed"
sync
if [ "$later" -eq 1 ] && [ ! -s "$state/failed" ]; then
    echo "VM-REBOOT: boot $boot done"
    systemctl reboot
    exit 0
fi
if [ -s "$state/failed" ]; then
    echo "VM-RESULT: FAIL (failed:$(tr -d '\n' <"$state/failed"))"
else
    echo "VM-RESULT: PASS"
fi
systemctl poweroff
