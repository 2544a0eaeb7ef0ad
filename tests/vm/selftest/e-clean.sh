#!/bin/sh
# Harness self-test: earlier scenarios' processes and tmp dirs are gone; `require` fails cleanly.
# timeout: 10
# expect: ^PASS: e-clean: no process left from earlier scenarios \(found 0\)$
# expect: ^PASS: e-clean: tmpfs work dir of a-fails was removed$
# expect: ^FAIL: e-clean: lunlink-no-such-tool is not in the image
# expect: ^VM-RESULT: FAIL \(failed: a-fails b-exits c-hangs d-silent e-clean\)$
. /vm/lib.sh
n=$(ps -o pid,args | grep -c '[s]leep 1000')
check "no process left from earlier scenarios (found $n)" test "$n" -eq 0
check "tmpfs work dir of a-fails was removed" test ! -e /tmp/vm/a-fails
require lunlink-no-such-tool
pass "not reached"
