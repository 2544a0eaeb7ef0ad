#!/bin/bash
# The same checks as system-5-rebooted, after a second reboot in a row.
# boot: 3
# timeout: 180
. /vm/scenarios/system-5-rebooted.sh
