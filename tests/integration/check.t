#!/bin/bash
# sluice check: a clean project exits 0; a broken one exits 1 listing every
# error as FILE:LINE:COL.
. "$SLUICE_TOP/tests/lib/tap.sh"
EX="$TOP/examples/support-triage"

out=$("$SLUICE" check "$EX" 2>&1); rc=$?
t_is "$rc" 0 "check on the example exits 0"
t_like "$out" '^ok: .*2 workflows, 2 connectors, 2 contracts' "check says what it loaded"

# Three mistakes in a copy: a misspelled key, a wrong type, broken jq.
P=$(project_copy "$EX")
W="$P/workflows/support-triage.yaml"
sed -i 's/^    idempotency_key: .\.input\.message_id + ":create".$/    idempotency_kye: '"'"'.input.message_id + ":create"'"'"'/' "$W"
sed -i 's/^version: 1$/version: one/' "$W"
sed -i "s/^    when: '.ticket.priority == \"high\"'$/    when: '.ticket.priority == '/" "$W"
out=$(cd "$P/.." && "$SLUICE" check "$(basename "$P")" 2>&1); rc=$?
t_is "$rc" 1 "check on a broken copy exits 1"
t_like "$out" "workflows/support-triage.yaml:2:10: .*version" "wrong type reported at FILE:LINE:COL"
t_like "$out" "workflows/support-triage.yaml:[0-9]+:5: .*idempotency_kye.*did you mean 'idempotency_key'" "misspelled key with did-you-mean"
t_like "$out" "workflows/support-triage.yaml:[0-9]+:[0-9]+: .*(jq|syntax)" "broken jq reported"
n=$(printf '%s\n' "$out" | grep -cE '^[^ ]+\.yaml:[0-9]+:[0-9]+: ')
t_is "$([ "$n" -ge 3 ] && echo yes)" yes "all three errors listed, not just the first ($n)"
t_like "$out" '\^' "a caret points at the spot"

json=$("$SLUICE" check --json "$P" 2>/dev/null); rc=$?
t_is "$rc" 1 "check --json exits 1 too"
t_is "$(printf '%s' "$json" | jq -r '.ok')" false "--json says ok: false"
t_is "$(printf '%s' "$json" | jq -r '.errors | length >= 3')" true "--json lists the errors"

# A jq error inside a block scalar points at its line and indentation.
mkdir -p "$T_TMP/bs/workflows"
printf 'workflow: bs\nversion: 1\nsteps:\n  - id: a\n    map: |\n      {\n        x: .input.x,\n        y: (.input.y +)\n      }\n' \
	> "$T_TMP/bs/workflows/bs.yaml"
out=$(cd "$T_TMP" && "$SLUICE" check bs 2>&1)
t_like "$out" '^bs/workflows/bs.yaml:8:7: error: step a: map: jq: syntax error' "a jq error in a block scalar names its line (8) and indentation (7)"

# Policy rules that can match nothing are warnings: listed, exit 0.
PW=$(project_copy "$TOP/examples/support-triage")
cat >"$PW/policies.yaml" <<'YAML'
rules:
  - id: typo-action
    who: agent
    what: write
    on: helpdesk.ticket.create
    decision: deny
  - id: typo-workflow
    who: workflow:support-traige
    what: read
    decision: allow
  - id: bad
    who: agent
    what: erase
    decision: deny
YAML
out=$("$SLUICE" check "$PW" 2>&1); rc=$?
t_is "$rc" 1 "a policy rule with an unknown verb is an error"
t_like "$out" 'policies.yaml:13:11: error: rule bad: what .erase. is not read, suggest, write or trigger' "…at FILE:LINE:COL"
sed -i '/id: bad/,$d' "$PW/policies.yaml"
out=$("$SLUICE" check "$PW" 2>&1); rc=$?
t_is "$rc" 0 "rules that match nothing only warn"
t_like "$out" "policies.yaml:2:5: warning: rule typo-action: on 'helpdesk.ticket.create' matches no connector action" "…an action that does not exist"
t_like "$out" "policies.yaml:7:5: warning: rule typo-workflow: who 'workflow:support-traige' matches no workflow or ai step" "…a workflow that does not exist"
t_is "$("$SLUICE" check --json "$PW" 2>/dev/null | jq -r '[.ok, (.warnings | length)] | map(tostring) | join(" ")')" "true 2" "--json lists them under warnings"

out=$("$SLUICE" check "$T_TMP/does-not-exist" 2>&1); rc=$?
t_is "$rc" 1 "a missing folder is an error"

out=$("$SLUICE" check --help); rc=$?
t_is "$rc" 0 "check --help exits 0"
t_like "$out" '^Usage: sluice check' "check --help prints usage"

out=$("$SLUICE" chekc 2>&1); rc=$?
t_is "$rc" 2 "an unknown verb exits 2"
t_like "$out" "did you mean 'check'" "an unknown verb gets a did-you-mean"
t_done
