#!/bin/sh
# PID 1 of the lunlink test VM (busybox ash). Sets the guest up, runs every scenario listed in
# /vm/manifest ("name:seconds" per line) with its time limit, prints one VM-RESULT line for
# the host, and powers off. The host-side protocol is described in tests/vm/README.md.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C

mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The image may lack a /dev/console node (built as non-root): re-open the console from devtmpfs.
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/lock/iscsi /run/dbus /run/tgtd /run/vm/results

echo "VM-INIT: started (kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB)"

problems=""
hostname lunlink-vm
ip link set lo up || problems="$problems; ip link set lo up failed"
while read -r ko; do
    insmod "$ko" || problems="$problems; insmod ${ko##*/} failed"
done </vm/modules
echo "VM-INIT: modules inserted in this order: $(sed 's,.*/,,; s,\.ko$,,' /vm/modules | tr '\n' ' ')"
# Kernel messages so far, kept for scenarios that want them; each scenario then starts with an
# empty ring so a failure dump shows only its own.
dmesg -c >/run/vm/dmesg.boot 2>&1

if grep -q 'lunlink.shell=1' /proc/cmdline; then
    echo "VM-INIT: interactive shell; run a scenario with: VM_SCENARIO=NAME sh /vm/scenarios/NAME.sh"
    echo "VM-INIT: 'exit' powers the guest off"
    setsid cttyhack sh -l
    poweroff -f
fi

# Ends every process but PID 1 (kernel threads ignore the signals), so scenarios stay
# independent: a tgtd or iscsid left running must not serve the next one.
sweep() {
    kill -s TERM -1 2>/dev/null
    sleep 1
    kill -s KILL -1 2>/dev/null
    wait 2>/dev/null
}

failed=""
run_scenario() {
    name=$1 limit=$2
    echo "VM-SCENARIO: BEGIN $name (limit ${limit}s)"
    dmesg -c >/dev/null 2>&1
    start=$(date +%s)
    # Its own process group, so a timeout reaches the command it is waiting for: ash runs the
    # TERM trap (and so the scenario's at_exit clean-up) only once that command has ended.
    VM_SCENARIO=$name setsid sh "/vm/scenarios/$name.sh" </dev/null &
    pid=$!
    ( sleep "$limit"
      if kill -0 "$pid" 2>/dev/null; then
          : >"/run/vm/timeout.$name"
          kill -s TERM -"$pid"; sleep 5; kill -s KILL -"$pid" 2>/dev/null
      fi ) </dev/null >/dev/null 2>&1 &
    wd=$!
    wait "$pid"
    rc=$?
    kill "$wd" 2>/dev/null
    end=$(date +%s)
    sweep

    npass=0 nfail=0
    if [ -f "/run/vm/results/$name" ]; then
        npass=$(grep -c '^PASS' "/run/vm/results/$name")
        nfail=$(grep -c '^FAIL' "/run/vm/results/$name")
    fi
    if [ -e "/run/vm/timeout.$name" ]; then
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
        msgs=$(dmesg | tail -n 60)
        if [ -n "$msgs" ]; then
            echo "--- kernel messages during $name (last 60 lines) ---"
            echo "$msgs" | sed 's/^/dmesg: /'
        fi
    fi
    rm -rf "/tmp/vm/$name"
    echo "VM-SCENARIO: END $name status=$rc seconds=$((end - start))"
}

for entry in $(cat /vm/manifest); do
    run_scenario "${entry%%:*}" "${entry##*:}"
done

[ -n "$failed" ] && problems="$problems; failed:$failed"
if [ -z "$problems" ]; then
    echo "VM-RESULT: PASS"
else
    echo "VM-RESULT: FAIL (${problems#; })"
fi
sync
poweroff -f
