#!/bin/sh
# Harness self-test: a scenario that asserts nothing fails.
# timeout: 10
# expect: ^FAIL: d-silent: printed no PASS or FAIL line$
. /vm/lib.sh
echo "nothing to report"
