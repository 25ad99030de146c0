#!/bin/bash
# The official JSON Schema Test Suite (draft 2020-12): Sluice's validator
# must agree with at least 95% of its cases. Prints the agreement.
. "$SLUICE_TOP/tests/lib/tap.sh"
SUITE="$TOP/../shared/conformance/json-schema-test-suite/tests/draft2020-12"
[ -d "$SUITE" ] || SUITE="${SLUICE_JSTS_DIR:-}"
if [ ! -d "$SUITE" ]; then
	echo "1..0 # SKIP the JSON Schema Test Suite is not beside the repo (../shared/conformance)"
	exit 0
fi
out=$("$BUILD/tests/jsts_run" "$SUITE" 2>&1); rc=$?
line=$(printf '%s\n' "$out" | grep '^jsts:' | tail -1)
echo "# $line" >&2
t_is "$rc" 0 "JSON Schema Test Suite agreement >= 95% ($line)"
t_done
