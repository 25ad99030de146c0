#!/bin/bash
# Trigger rules see the caller's role: `who: role:operator` matches the
# runs an operator's key starts through the API, not an admin's (a role
# names the keys of that role only, so a deny stays with it).
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-roles EMAIL_HOOK_SECRET=whsec-roles-1
start_target --require-bearer "$HELPDESK_TOKEN"
P=$(project_copy "$TOP/examples/support-triage")
project_no_approval "$P"
cat >>"$P/policies.yaml" <<'YAML'
  - id: operators-do-not-start-triage
    who: role:operator
    what: trigger
    on: support-triage
    decision: deny
YAML
t_ok "the rule checks" "$SLUICE" check "$P"
start_serve_dir "$P"
op=$(t_api_key "$P" operator default)
post() { curl -q -s -o "$T_TMP/post.json" -w '%{http_code}' -H "Authorization: Bearer $1" \
	-H 'Content-Type: application/json' --data-binary @"$P/fixtures/email-1.json" "$URL/v1/workflows/support-triage/runs"; }
t_is "$(post "$op")" 403 "an operator's key may not start the workflow the rule names"
t_like "$(cat "$T_TMP/post.json")" 'operators-do-not-start-triage' "…the problem names the rule"
t_is "$(curl -s "$URL/v1/audit?action=policy.deny" | jq -r '.entries[0] | .policy.rule + " " + .actor.id')" \
	"operators-do-not-start-triage t-operator" "…and the refusal is audited with the caller"
t_is "$(post "$SLUICE_TOKEN")" 202 "an admin's key still may (role:operator is not role:admin)"
t_done
