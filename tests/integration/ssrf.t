#!/bin/bash
# Outbound safety end to end (issue 6 point 7): a connector pointed at
# loopback is refused before it connects unless allow_hosts names the host;
# bad allow_hosts entries are `sluice check` errors at FILE:LINE:COL. The
# encodings, ranges and redirects are covered by tests/unit/test_ssrf.c.
. "$SLUICE_TOP/tests/lib/tap.sh"
export HELPDESK_TOKEN=test-token-7c1d
start_target --require-bearer "$HELPDESK_TOKEN"
port=${TARGET_URL##*:}
P=$(project_copy "$TOP/examples/support-triage")
C="$P/connectors/helpdesk.yaml"
t_like "$(cat "$C")" '^allow_hosts: \[127\.0\.0\.1\]' "the example names its simulator in allow_hosts"

run() { "$SLUICE" run --json "$P" support-triage -i "$P/fixtures/email-1.json" 2>/dev/null; }

sed -i '/^allow_hosts:/d' "$C"
out=$(run); rc=$?
t_is "$rc" 1 "without allow_hosts the run fails"
t_is "$(printf '%s' "$out" | jq -r .error.class)" permanent "…with a permanent error"
t_like "$(printf '%s' "$out" | jq -r .error.message)" \
	"POST http://127\.0\.0\.1:$port/tickets: destination 127\.0\.0\.1 is a loopback address: add it to allow_hosts to allow it" \
	"…naming the address, why, and the fix"
t_is "$(printf '%s' "$out" | jq -r '.steps[] | select(.id=="create") | .attempts')" 1 "…not retried"
t_is "$(target_stats | jq -r .effects)" 0 "the target saw no call"

# A name is judged by what it resolves to.
sed -i "s#^base_url: .*#base_url: http://localhost:$port#" "$C"
out=$(run)
t_like "$(printf '%s' "$out" | jq -r .error.message)" \
	'destination (127\.0\.0\.1|::1) \(from localhost\) is a loopback address' "localhost is refused for its address"

printf 'allow_hosts: [localhost]\n' >>"$C"
out=$(run); rc=$?
t_is "$rc" 0 "allow_hosts naming the host lets the run through"
t_is "$(target_stats | jq -r .effects)" 1 "…and the target saw the call"

# Bad entries, each at its line and column.
sed -i 's/^allow_hosts: .*/allow_hosts: [127.0.0.1, 10.0.0.1\/8, "0x7f000001", 10.0.0.0\/33]/' "$C"
out=$(cd "$P" && "$SLUICE" check . 2>&1); rc=$?
line=$(grep -n '^allow_hosts:' "$C" | cut -d: -f1)
t_is "$rc" 1 "check refuses bad allow_hosts entries"
t_like "$out" "connectors/helpdesk.yaml:$line:26: .*\"10\.0\.0\.1/8\" has bits set past its /8 prefix \(did you mean \"10\.0\.0\.0/8\"\?\)" \
	"a CIDR with host bits, at its column"
t_like "$out" "connectors/helpdesk.yaml:$line:[0-9]+: .*\"0x7f000001\" is the IPv4 address 127\.0\.0\.1: write it as 127\.0\.0\.1" \
	"an address in an unusual spelling"
t_like "$out" "connectors/helpdesk.yaml:$line:[0-9]+: .*prefix length must be 0 to 32" "a prefix past /32"
sed -i 's/^allow_hosts: .*/allow_hosts: 127.0.0.1/' "$C"
out=$(cd "$P" && "$SLUICE" check . 2>&1)
t_like "$out" "connectors/helpdesk.yaml:$line:14: .*\"allow_hosts\" must be a list, not a string" "a string instead of a list"
t_done
