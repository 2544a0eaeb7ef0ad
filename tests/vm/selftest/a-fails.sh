#!/bin/sh
# Harness self-test: one check fails; a stray process and a log file are left behind.
# timeout: 30
# expect: ^PASS: a-fails: true is true$
# expect: ^FAIL: a-fails: false is true$
# expect: ^fake\.log: daemon says hello$
. /vm/lib.sh
echo "daemon says hello" >"$VM_TMP/fake.log"
sleep 1000 &
check "true is true" true
check "false is true" false
