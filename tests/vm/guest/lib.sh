# Helpers for VM scenarios (busybox ash). A scenario starts with `. /vm/lib.sh`.
#
# Result lines, which the host counts: "PASS: <scenario>: <what>" and "FAIL: <scenario>: <what>".
# Measurements: "FIGURE: <label> <key>=<value>" (reported, never pass/fail).
# Daemon logs go to $VM_TMP/*.log; their tails are printed when the scenario has failed.

: "${VM_SCENARIO:=$(basename "$0" .sh)}"
VM_TMP=/tmp/vm/$VM_SCENARIO
VM_RESULTS=/run/vm/results
mkdir -p "$VM_TMP" "$VM_RESULTS"

pass() { echo "PASS: $VM_SCENARIO: $*"; echo PASS >>"$VM_RESULTS/$VM_SCENARIO"; }
fail() { echo "FAIL: $VM_SCENARIO: $*"; echo FAIL >>"$VM_RESULTS/$VM_SCENARIO"; }
# die WHAT: a failure after which the rest of the scenario makes no sense.
die() { fail "$@"; exit 1; }
note() { echo "note: $VM_SCENARIO: $*"; }
figure() { echo "FIGURE: $*"; }

# check WHAT CMD...: PASS or FAIL depending on CMD's exit status (returned).
check() {
    _what=$1; shift
    if "$@"; then pass "$_what"; else fail "$_what"; return 1; fi
}

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds; 1 when time runs out.
wait_for() {
    _deadline=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$_deadline" ] && return 1
        sleep 0.2
    done
}

# require PROG...: die unless each program is in the image. The lunlink binaries are only
# there when target/release held them when the image was built.
require() {
    for _c; do
        command -v "$_c" >/dev/null 2>&1 ||
            die "$_c is not in the image (declare it in '# needs:', or cargo build --release)"
    done
}

# at_exit CMD: run CMD (a string, eval'd) when the scenario ends; the last one added runs first.
_vm_at_exit=""
at_exit() { _vm_at_exit="$*
$_vm_at_exit"; }
_vm_exit() {
    _rc=$?
    trap - EXIT
    eval "$_vm_at_exit"
    if grep -q '^FAIL' "$VM_RESULTS/$VM_SCENARIO" 2>/dev/null || [ "$_rc" -ne 0 ]; then
        for _log in "$VM_TMP"/*.log; do
            [ -s "$_log" ] || continue
            echo "--- ${_log##*/} (last 40 lines) ---"
            tail -n 40 "$_log" | sed "s|^|${_log##*/}: |"
        done
    fi
    exit "$_rc"
}
trap _vm_exit EXIT
trap 'exit 143' TERM INT

# --- tgtd (userspace target, package tgt) --------------------------------------------------

# tgtd_start N PORTAL: start tgtd with control port N listening on PORTAL (ip:port), wait until
# it answers, and kill it when the scenario ends (tgtd ignores SIGTERM).
tgtd_start() {
    tgtd -f -C "$1" --iscsi portal="$2" >"$VM_TMP/tgtd.$1.log" 2>&1 &
    at_exit "kill -s KILL $! 2>/dev/null"
    wait_for 30 tgtadm -C "$1" --lld iscsi --op show --mode sys ||
        die "tgtd -C $1 did not answer on its control socket within 30 s"
}

# tgt_target N TID IQN: create target TID named IQN, open to every initiator.
tgt_target() {
    tgtadm -C "$1" --lld iscsi --op new --mode target --tid "$2" -T "$3" &&
        tgtadm -C "$1" --lld iscsi --op bind --mode target --tid "$2" -I ALL
}

# tgt_lun N TID LUN BACKING [BSTYPE]: add a logical unit (BSTYPE null needs no backing file).
tgt_lun() {
    tgtadm -C "$1" --lld iscsi --op new --mode logicalunit --tid "$2" --lun "$3" -b "$4" \
        ${5:+--bstype "$5"}
}

# make_file PATH MIB: a sparse file of MIB MiB (on tmpfs: RAM-backed).
make_file() {
    dd if=/dev/zero of="$1" bs=1048576 count=0 seek="$2" 2>/dev/null
}

# --- open-iscsi (the kernel's own initiator) ----------------------------------------------

# iscsid_start: start iscsid in the foreground (logs in $VM_TMP/iscsid.log) and wait until
# iscsiadm can reach it.
iscsid_start() {
    iscsid -f >"$VM_TMP/iscsid.log" 2>&1 &
    at_exit "kill -s KILL $! 2>/dev/null"
    wait_for 30 grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix ||
        die "iscsid did not open its control socket within 30 s"
}

# iscsi_disk LUN: print /dev/sdX of LUN on the only iSCSI session, or nothing yet.
iscsi_disk() {
    for _b in /sys/class/iscsi_session/session*/device/target*/*:"$1"/block/*; do
        [ -e "$_b" ] && echo "/dev/${_b##*/}" && return 0
    done
    return 1
}

# --- D-Bus ----------------------------------------------------------------------------------

# dbus_start: a private bus of type system on the standard socket path, so zbus's system()
# connection finds it; exports DBUS_SYSTEM_BUS_ADDRESS too. The policy lets everyone own and
# call anything; without `receive_sender` a system bus delivers no replies.
dbus_start() {
    cat >"$VM_TMP/bus.conf" <<'CONF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow send_type="method_call"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
    mkdir -p /run/dbus
    _out=$(dbus-daemon --config-file="$VM_TMP/bus.conf" --print-address=1 --print-pid=1 \
        --fork 2>"$VM_TMP/dbus-daemon.log") || die "dbus-daemon did not start"
    DBUS_SYSTEM_BUS_ADDRESS=$(echo "$_out" | sed -n 1p)
    export DBUS_SYSTEM_BUS_ADDRESS
    at_exit "kill $(echo "$_out" | sed -n 2p) 2>/dev/null"
}

# fio_start NAME SECONDS: in the background, fio random writes (4 KiB, QD32) on $dev for
# SECONDS with crc32c verification (the verify reads follow the writes), into
# $VM_TMP/fio-NAME.out; sets FIO. fio_result "$FIO" "$VM_TMP/fio-NAME.out" then reads it.
fio_start() {
    fio --name="$1" --filename="$dev" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
        --direct=1 --size=32m --runtime="$2" --time_based --verify=crc32c --do_verify=1 \
        --verify_fatal=1 --output-format=terse,normal >"$VM_TMP/fio-$1.out" 2>&1 &
    FIO=$!
}

# fio_result PID OUT: wait for the fio run PID, started with --output-format=terse,normal into
# OUT; print its summary lines and set rc (fio's exit status), err (the job's error number,
# terse v3 field 5; empty without a terse line) and LAT_MS (its longest IO latency in ms, reads
# or writes: terse fields 39 and 80, in usec).
fio_result() {
    wait "$1"
    rc=$?
    grep -E 'err=|IOPS=|lat \(' "$2" | head -5
    err=$(awk -F';' '/^3;/ {print $5}' "$2")
    LAT_MS=$(awk -F';' '/^3;/ {m = ($39 > $80) ? $39 : $80; printf "%d", m / 1000}' "$2")
}

# --- two paths to one LU (multipath) ----------------------------------------------------------

# tgt_two_paths IQN: tgtd on 127.0.0.1:3260 serving a 64 MiB LUN 1 of IQN, reached through two
# socat proxies, A=127.0.0.1:3270 and B=127.0.0.1:3271 (each connection a child socat, so a
# proxy can be silenced with SIGSTOP or its connection reset); sets P, A, B and B_LISTENER.
tgt_two_paths() {
    P=127.0.0.1:3260 A=127.0.0.1:3270 B=127.0.0.1:3271
    tgtd_start 1 "$P"
    make_file "$VM_TMP/lun1.img" 64
    tgt_target 1 1 "$1" || die "tgtadm could not create target $1"
    tgt_lun 1 1 1 "$VM_TMP/lun1.img" || die "tgtadm could not add LUN 1"
    socat TCP-LISTEN:3270,bind=127.0.0.1,fork,reuseaddr TCP:$P </dev/null >/dev/null 2>&1 &
    at_exit "pkill -CONT -f 'TCP-LISTEN:327'; pkill -KILL -f 'TCP-LISTEN:327'"
    socat TCP-LISTEN:3271,bind=127.0.0.1,fork,reuseaddr TCP:$P </dev/null >/dev/null 2>&1 &
    B_LISTENER=$!
}

# login_two_paths IQN: node records for IQN on $A and $B, login, both paths active; sets dev to
# the LU's one block device.
login_two_paths() {
    lunlinkctl node create "$1" "$A" >/dev/null || die "node create $A failed"
    lunlinkctl node create "$1" "$B" >/dev/null || die "node create $B failed"
    lunlinkctl login "$1" >/dev/null || die "login to $1 failed"
    wait_for 30 _two_active || { lunlinkctl lus; die "the LU did not get two active paths"; }
    lunlinkctl lus
    dev=$(dev_of 1 | sort -u)
    check "two paths give one block device ($dev)" test "$(echo "$dev" | wc -l)" -eq 1 -a -b "$dev" ||
        die "no single block device for the two paths"
}
_two_active() { test "$(lunlinkctl --no-legend lus | grep -c active)" -eq 2; }

# --- LIO (the kernel's iSCSI target, configured through configfs) -----------------------------

LIO=/sys/kernel/config/target
# lio_start: mount configfs (the scenario lists configfs target_core_mod target_core_file
# iscsi_target_mod under "# modules:") and take LIO's targets down when the scenario ends.
lio_start() {
    grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config ||
        die "cannot mount configfs on /sys/kernel/config"
    [ -d "$LIO" ] || die "no LIO tree at $LIO (target_core_mod not loaded?)"
    at_exit lio_clear
}
# lio_backstore NAME MIB: a fileio backstore NAME on a MIB MiB file ($VM_TMP/lio-NAME.img),
# with a unit serial as targetcli sets one: without it LIO lists no VPD pages (no WWID).
lio_backstore() {
    make_file "$VM_TMP/lio-$1.img" "$2"
    _d=$LIO/core/fileio_0/$1
    mkdir -p "$_d" &&
        echo "fd_dev_name=$VM_TMP/lio-$1.img,fd_dev_size=$(($2 << 20))" >"$_d/control" &&
        echo 1 >"$_d/enable" &&
        echo "lunlink-$(printf %s "$1" | md5sum | cut -c1-16)" >"$_d/wwn/vpd_unit_serial" ||
        die "cannot create the LIO backstore $1"
}
# lio_tpg IQN TPGT PORTAL BACKSTORE: portal group TPGT of target IQN on PORTAL, BACKSTORE as
# LUN 0, open to every initiator (demo mode) without authentication; lio_enable starts it.
lio_tpg() {
    _p=$LIO/iscsi/$1/tpgt_$2
    mkdir -p "$_p/lun/lun_0" && ln -s "$LIO/core/fileio_0/$4" "$_p/lun/lun_0/lu" &&
        echo 0 >"$_p/attrib/authentication" && echo 1 >"$_p/attrib/generate_node_acls" &&
        echo 0 >"$_p/attrib/demo_mode_write_protect" && mkdir "$_p/np/$3" ||
        die "cannot create LIO portal group $1 tpgt_$2 on $3"
}
lio_enable() { echo 1 >"$LIO/iscsi/$1/tpgt_$2/enable" || die "cannot enable LIO $1 tpgt_$2"; }
# lio_clear: take every LIO target and backstore down (also when a scenario left them half made).
lio_clear() {
    for _t in "$LIO"/iscsi/iqn.*; do
        [ -d "$_t" ] || continue
        for _g in "$_t"/tpgt_*; do
            echo 0 >"$_g/enable" 2>/dev/null
            for _n in "$_g"/np/*; do rmdir "$_n" 2>/dev/null; done
            for _l in "$_g"/lun/lun_*; do rm -f "$_l"/lu 2>/dev/null; rmdir "$_l" 2>/dev/null; done
            rmdir "$_g" 2>/dev/null
        done
        rmdir "$_t" 2>/dev/null
    done
    for _b in "$LIO"/core/fileio_*/*; do
        [ -d "$_b" ] || continue
        for _a in "$_b"/alua/*; do [ "${_a##*/}" = default_tg_pt_gp ] || rmdir "$_a" 2>/dev/null; done
        rmdir "$_b" 2>/dev/null
    done
}

# --- lunlink and block devices --------------------------------------------------------------

# dev_of LUN: the /dev/ublkbN lunlinkctl shows for LUN (one line per path), or nothing.
# The block device of LUN $1 (columns: TARGET LUN ... DEVICE BY-PATH).
dev_of() { lunlinkctl --no-legend luns 2>/dev/null | awk -v l="$1" '$2 == l { for (i = 3; i <= NF; i++) if ($i ~ /^\/dev\/ublkb/) { print $i; break } }'; }
# session_is STATE: some session is in STATE (logged-in, reconnecting, failed, ...).
session_is() { lunlinkctl --no-legend sessions 2>/dev/null | grep -q "$1"; }
# md5: the MD5 of standard input, hex only.
md5() { md5sum | cut -d' ' -f1; }
# now_ms: milliseconds since boot.
now_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
# alive PID: the process still runs.
alive() { kill -0 "$1" 2>/dev/null; }
# writes DEV: write requests DEV has completed so far (field 5 of /sys/block/N/stat).
writes() { awk '{print $5}' "/sys/block/${1#/dev/}/stat"; }
# progressed DEV N: DEV has completed at least N writes.
progressed() { [ "$(writes "$1")" -ge "$2" ]; }

# tgt_one PORTAL IQN FILE: tgtd with control port 1 on PORTAL serving FILE as LUN 1 of IQN; sets
# TGTD. Call it again after killing TGTD: tgtd keeps its configuration in memory only.
tgt_one() {
    tgtd -f -C 1 --iscsi portal="$1" >>"$VM_TMP/tgtd.log" 2>&1 &
    TGTD=$!
    wait_for 30 tgtadm -C 1 --lld iscsi --op show --mode sys ||
        die "tgtd did not answer on its control socket within 30 s"
    tgt_target 1 1 "$2" || die "tgtadm could not create target $2"
    tgt_lun 1 1 1 "$3" || die "tgtadm could not add LUN 1"
}

# lunlinkd_start: lunlinkd on the system bus with $VM_TMP/state and $VM_TMP/lunlink.toml, its
# log appended to $VM_TMP/lunlinkd.log; sets LUNLINKD. Does not wait for it.
lunlinkd_start() {
    lunlinkd --bus system --state-dir "$VM_TMP/state" --config "$VM_TMP/lunlink.toml" \
        >>"$VM_TMP/lunlinkd.log" 2>&1 &
    LUNLINKD=$!
}

# lunlinkd_up: lunlinkd_start, stopped (after a forced logout of everything) when the scenario
# ends, and waited for until it answers on the bus.
lunlinkd_up() {
    lunlinkd_start
    at_exit 'kill $LUNLINKD 2>/dev/null; wait $LUNLINKD 2>/dev/null'
    at_exit "lunlinkctl logout --all --force >/dev/null 2>&1"
    wait_for 30 lunlinkctl status || die "lunlinkd did not answer on the bus within 30 s"
}

# login_lun1 PORTAL IQN: discover PORTAL, log in to IQN and set dev to LUN 1's block device.
login_lun1() {
    lunlinkctl discover "$1" >/dev/null || die "lunlinkctl discover $1 failed"
    lunlinkctl login "$2" || die "lunlinkctl login $2 failed"
    dev=$(dev_of 1)
    [ -n "$dev" ] || { lunlinkctl --json luns; die "login gave LUN 1 no block device"; }
    pass "login to $2 gives $dev"
}

