#!/bin/sh
# Harness self-test: a non-zero exit without a FAIL line is a failure.
# timeout: 30
# expect: ^FAIL: b-exits: exited with status 3 without a FAIL line$
. /vm/lib.sh
pass "about to exit badly"
exit 3
