#!/bin/sh
# Harness self-test: a scenario past its limit is stopped, and its at_exit clean-up still runs.
# timeout: 5
# expect: ^at_exit ran after TERM$
# expect: ^FAIL: c-hangs: timed out after 5s$
. /vm/lib.sh
at_exit 'echo "at_exit ran after TERM"'
pass "about to hang"
sleep 1000
