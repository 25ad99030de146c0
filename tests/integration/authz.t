#!/bin/bash
# Authorisation matrix (issue 6): every route of the route table (the
# OpenAPI document must list exactly the rows below) x {no key, revoked
# key, expired key, another tenant's key, viewer, operator, admin}: denied
# where it should be (401 with WWW-Authenticate, or 403), allowed elsewhere,
# and another tenant's run or DLQ entry is 404 (as if it did not exist).
# Then tenant isolation of runs, DLQ, audit, costs and keys, the key CLI,
# and policies.yaml errors in `sluice check`.
. "$SLUICE_TOP/tests/lib/tap.sh"
export MODEL_KEY=sk-authz-test-91c2
start_model_sim --api-key env:MODEL_KEY

P="$T_TMP/proj"
mkdir -p "$P/workflows"
printf 'store: sqlite:.sluice/sluice.db\n' >"$P/sluice.yaml"
printf 'providers:\n  sim: { type: openai, base_url: "%s/v1", api_key: env:MODEL_KEY }\n' "$SIM_URL" >"$P/models.yaml"
printf 'models:\n  a: { provider: sim, price: { input: 1, output: 2 } }\nroutes:\n  chat: { models: [a] }\n' >>"$P/models.yaml"
printf 'workflow: slow\nversion: 1\nsteps:\n  - id: nap\n    wait: 1h\n' >"$P/workflows/slow.yaml"
printf 'workflow: dies\nversion: 1\nsteps:\n  - id: boom\n    map: %s\n' "'error(\"boom\")'" >"$P/workflows/dies.yaml"
printf 'workflow: noop\nversion: 1\nsteps:\n  - id: one\n    map: .input\n' >"$P/workflows/noop.yaml"
# approvals: one any operator may decide, one only admin-a may
printf 'workflow: ask\nversion: 1\nsteps:\n  - id: confirm\n    approval: { reviewers: [role:operator] }\n' >"$P/workflows/ask.yaml"
printf 'workflow: ask-admin\nversion: 1\nsteps:\n  - id: confirm\n    approval: { reviewers: [admin-a] }\n' \
	>"$P/workflows/ask-admin.yaml"
cat >"$P/policies.yaml" <<'YAML'
tenants: [acme, globex]
principals:
  - { name: viewer-a, kind: user, tenant: acme, role: viewer }
  - { name: operator-a, kind: user, tenant: acme, role: operator }
  - { name: admin-a, kind: user, tenant: acme, role: admin }
  - { name: operator-g, kind: service, tenant: globex, role: operator }
  - { name: root, kind: user, tenant: "*", role: admin }
YAML
t_ok "the project with policies.yaml checks" "$SLUICE" check "$P"

key() { "$SLUICE" keys create --principal "$@" "$P" 2>>"$T_TMP/keys.err"; }
key_id() { printf '%s' "$1" | cut -d_ -f3; }
VIEWER=$(key viewer-a)
OPERATOR=$(key operator-a)
ADMIN=$(key admin-a)
OTHER=$(key operator-g)
ROOT=$(key root)
REVOKED=$(key admin-a --name to-revoke)
EXPIRED=$(key admin-a --expires 1s --name short-lived)
SPARE=$(key viewer-a --name spare)
t_like "$VIEWER" '^sk_sluice_[0-9a-f]{16}_[0-9a-f]{64}$' "sluice keys create prints a key once"
t_like "$("$SLUICE" keys create --principal viewer-a --role admin "$P" 2>&1)" \
	"principal 'viewer-a' is viewer: a key cannot be admin" "a key cannot outrank its principal"
t_like "$("$SLUICE" keys create --principal viewer-a --tenant globex "$P" 2>&1)" "belongs to tenant 'acme'" \
	"…nor change its tenant"
t_like "$("$SLUICE" keys create --principal mallory "$P" 2>&1)" "not declared in policies.yaml" \
	"…nor name an undeclared principal"
t_ok "sluice keys revoke" "$SLUICE" keys revoke "$(key_id "$REVOKED")" "$P"
t_is "$("$SLUICE" keys revoke "$(key_id "$REVOKED")" "$P" >/dev/null 2>&1; echo $?)" 1 "…twice is exit 1"
list=$("$SLUICE" keys list "$P")
t_like "$list" "$(key_id "$ROOT") +root +admin +\*" "sluice keys list shows id, principal, role, tenant"
t_unlike "$list$("$SLUICE" keys list --json "$P")" "$(printf '%s' "$ROOT" | cut -d_ -f4)|hash" \
	"…and never a secret or a hash"
sleep 1.1 # EXPIRED expires

SLUICE_TOKEN=$ROOT start_serve_dir "$P"

# req TOKEN METHOD PATH [BODY]: prints the status; the body is in
# $T_TMP/body, the headers in $T_TMP/head. -q: not the test's curl config.
req() {
	local tok=$1 m=$2 path=$3 body=${4:-}
	local a=(-q -s -o "$T_TMP/body" -D "$T_TMP/head" -w '%{http_code}' -X "$m")
	[ -n "$tok" ] && a+=(-H "Authorization: Bearer $tok")
	[ -n "$body" ] && a+=(-H 'Content-Type: application/json' --data-binary "$body")
	curl "${a[@]}" "$URL$path"
}

# the tenant-owned things the routes name
RUN_A=$(req "$OPERATOR" POST /v1/workflows/slow/runs '{}' >/dev/null; jq -r .run_id "$T_TMP/body")
RUN_G=$(req "$OTHER" POST /v1/workflows/slow/runs '{}' >/dev/null; jq -r .run_id "$T_TMP/body")
req "$OPERATOR" POST /v1/workflows/dies/runs '{}' >/dev/null
for _ in $(seq 100); do
	req "$ROOT" GET /v1/dlq >/dev/null
	DLQ_A=$(jq -r '.entries[0].id // empty' "$T_TMP/body")
	[ -n "$DLQ_A" ] && break
	sleep 0.05
done
# approval WORKFLOW: starts an acme run of WORKFLOW, prints its approval's id
approval() {
	local run
	run=$(req "$OPERATOR" POST "/v1/workflows/$1/runs" '{}' >/dev/null; jq -r .run_id "$T_TMP/body")
	for _ in $(seq 100); do
		req "$ROOT" GET "/v1/approvals?run_id=$run" >/dev/null
		id=$(jq -r '.approvals[0].id // empty' "$T_TMP/body")
		[ -n "$id" ] && break
		sleep 0.05
	done
	printf '%s' "$id"
}
APR_A=$(approval ask)
APR_ADMIN=$(approval ask-admin)
t_like "$RUN_A $RUN_G $DLQ_A $APR_A" '^run_[^ ]+ run_[^ ]+ [^ ]+ apr_[^ ]+$' \
	"an acme run, a globex run, an acme DLQ entry and an acme approval exist"
CHAT='{"model":"chat","messages":[{"role":"user","content":"hello"}]}'

# METHOD PATH NEED [BODY]: NEED is public, viewer, operator or admin; RUN,
# DLQ and APR (an approval) in a path are the acme tenant's.
{
	echo "GET / public"
	echo "GET /healthz public"
	echo "GET /readyz public"
	echo "GET /v1/openapi.json public"
	echo "GET /metrics viewer"
	echo "GET /v1/workflows viewer"
	echo "POST /v1/workflows/noop/runs operator {}"
	echo "GET /v1/runs viewer"
	echo "GET /v1/runs/RUN viewer"
	echo "POST /v1/runs/RUN/cancel operator"
	echo "GET /v1/dlq viewer"
	echo "POST /v1/dlq/replay?workflow=none operator"
	echo "POST /v1/dlq/DLQ/replay operator"
	echo "GET /v1/audit viewer"
	echo "POST /hooks/nothing public {}"
	echo "POST /v1/chat/completions operator $CHAT"
	echo "GET /v1/models viewer"
	echo "GET /v1/costs viewer"
	echo "GET /v1/connectors viewer"
	echo "GET /v1/runs/RUN/trace viewer"
	echo "GET /v1/drift viewer"
	echo "GET /v1/slo viewer"
	echo "GET /v1/pauses viewer"
	echo 'POST /v1/pauses admin {"kind":"workflow","name":"noop"}'
	echo "DELETE /v1/pauses/workflow/noop admin"
	echo "GET /v1/keys admin"
	echo "POST /v1/keys/SPARE/revoke admin"
	echo "GET /v1/approvals viewer"
	echo "GET /v1/approvals/APR viewer"
	echo 'POST /v1/approvals/APR/decision operator {"decision":"approve","reason":"matrix"}'
	echo 'POST /v1/events operator {"specversion":"1.0","id":"authz-1","source":"/authz","type":"none"}'
} >"$T_TMP/matrix"
# the matrix covers the route table: the OpenAPI document, which test_server
# holds to the router's table, lists the same routes
req "" GET /v1/openapi.json >/dev/null
documented=$(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | ascii_upcase + " " + $p' "$T_TMP/body" | sort)
covered=$(cut -d' ' -f1,2 "$T_TMP/matrix" | sed -e 's#/RUN#/{id}#' -e 's#/DLQ/#/{id}/#' -e 's#/SPARE/#/{id}/#' \
	-e 's#/APR$#/{id}#' -e 's#/APR/#/{id}/#' \
	-e 's#?.*##' -e 's#/hooks/nothing#/hooks/{path}#' -e 's#/noop/runs#/{name}/runs#' \
	-e 's#/workflow/noop#/{kind}/{name}#' | sort)
t_is "$covered" "$documented" "the matrix has one row per route"

rank() { case $1 in viewer) echo 0 ;; operator) echo 1 ;; admin) echo 2 ;; *) echo -1 ;; esac; }
# WHO|TOKEN|ROLE|OWN: OWN says whether acme's things are its own
identities="none||public|no revoked|$REVOKED|public|no expired|$EXPIRED|public|no other|$OTHER|operator|no"
identities="$identities viewer|$VIEWER|viewer|yes operator|$OPERATOR|operator|yes admin|$ADMIN|admin|yes"
bad=0 checked=0
while read -r m path need body; do
	p=${path//RUN/$RUN_A}
	p=${p//DLQ/$DLQ_A}
	p=${p//SPARE/$(key_id "$SPARE")}
	p=${p//APR/$APR_A}
	owned=no
	[[ $path == *RUN* || $path == *DLQ* || $path == *APR* ]] && owned=yes
	for ident in $identities; do
		IFS='|' read -r who tok role own <<<"$ident"
		got=$(req "$tok" "$m" "$p" "$body")
		if [ "$need" = public ]; then
			want=allowed
		elif [ -z "$tok" ] || [ "$who" = revoked ] || [ "$who" = expired ]; then
			want=401
		elif [ "$(rank "$role")" -lt "$(rank "$need")" ]; then
			want=403
		elif [ $owned = yes ] && [ "$own" = no ]; then
			want=404
		else
			want=allowed
		fi
		ok=no
		case $want in
		allowed)
			[ "$got" != 401 ] && [ "$got" != 403 ] && [ "$got" -lt 500 ] &&
				{ [ $owned = no ] || [ "$got" != 404 ]; } && ok=yes
			;;
		401) [ "$got" = 401 ] && grep -qi '^WWW-Authenticate: Bearer' "$T_TMP/head" && ok=yes ;;
		*) [ "$got" = "$want" ] && ok=yes ;;
		esac
		checked=$((checked + 1))
		if [ $ok = no ]; then
			bad=$((bad + 1))
			t_diag "$m $path as $who: got $got, want $want: $(head -c 300 "$T_TMP/body")"
		fi
	done
done <"$T_TMP/matrix"
t_is "$bad" 0 "authorisation matrix: $checked cases, every one as expected"

# why a key is refused, in words (never the key)
req "$EXPIRED" GET /v1/runs >/dev/null
t_like "$(jq -r .detail "$T_TMP/body")" "expired" "an expired key: 401 says it expired"
req "$REVOKED" GET /v1/runs >/dev/null
t_like "$(jq -r .detail "$T_TMP/body")" "revoked" "a revoked key: 401 says it was revoked"
t_is "$(req "sk_sluice_0000000000000000_$(printf '0%.0s' $(seq 64))" GET /v1/runs)" 401 "an unknown key: 401"
req "" GET /v1/runs >/dev/null
t_is "$(jq -r .type "$T_TMP/body")" "https://sluice.dev/problems/unauthorized" "…as problem+json"
req "$VIEWER" POST "/v1/runs/$RUN_G/cancel" >/dev/null
t_like "$(jq -r .detail "$T_TMP/body")" "needs the operator role" "a viewer cannot cancel: 403 names the role"

# an operator may decide only approvals that list it (or a role it holds)
DECIDE='{"decision":"approve","reason":"ok"}'
t_is "$(req "$OPERATOR" POST "/v1/approvals/$APR_ADMIN/decision" "$DECIDE")" 403 \
	"an operator not among an approval's reviewers may not decide it"
t_like "$(jq -r .detail "$T_TMP/body")" "not among this approval's reviewers" "…403 says why"
t_is "$(req "$OTHER" POST "/v1/approvals/$APR_ADMIN/decision" "$DECIDE")" 404 "…another tenant's key: 404"
t_is "$(req "$ADMIN" POST "/v1/approvals/$APR_ADMIN/decision" "$DECIDE")" 200 "…the listed reviewer decides"
req "$ROOT" GET "/v1/approvals/$APR_ADMIN" >/dev/null
t_is "$(jq -r '.status + " " + .decision.by' "$T_TMP/body")" "approved admin-a" "…and is named as the decider"

# tenant isolation
runs() { req "$1" GET "/v1/runs?limit=500" >/dev/null; jq -r '[.runs[].id] | join(" ")' "$T_TMP/body"; }
t_like "$(runs "$VIEWER")" "$RUN_A" "acme's key lists acme's runs"
t_unlike "$(runs "$VIEWER")" "$RUN_G" "…and not globex's"
t_unlike "$(runs "$OTHER")" "$RUN_A" "globex's key does not list acme's runs"
t_like "$(runs "$ROOT")" "$RUN_A.*$RUN_G|$RUN_G.*$RUN_A" "a key of tenant * lists both"
req "$OTHER" GET "/v1/runs/$RUN_G" >/dev/null
t_is "$(jq -r .tenant "$T_TMP/body")" globex "a run started with globex's key is globex's"
req "$OTHER" GET /v1/dlq >/dev/null
t_is "$(jq -r .total "$T_TMP/body")" 0 "globex's key sees no DLQ entry of acme's"
req "$VIEWER" GET /v1/dlq >/dev/null
t_like "$(jq -r .total "$T_TMP/body")" '^[1-9]' "…acme's does"
aud() { req "$1" GET "/v1/audit?limit=500$2" >/dev/null; jq -r '[.entries[].tenant] | unique | join(",")' "$T_TMP/body"; }
t_is "$(aud "$VIEWER")" acme "acme's key reads only acme's audit entries"
t_is "$(aud "$VIEWER" "&tenant=globex")" acme "…even when it asks for globex's"
t_is "$(aud "$OTHER")" globex "globex's key reads only globex's"
t_like "$(aud "$ROOT")" "acme.*globex" "a key of tenant * reads every tenant's"
req "$ROOT" GET "/v1/audit?action=run.start&run_id=$RUN_A" >/dev/null
t_is "$(jq -r '.entries[0].actor.kind + ":" + .entries[0].actor.id' "$T_TMP/body")" "user:operator-a" \
	"the audit names the key's principal as the actor"
req "$ROOT" GET "/v1/audit?action=key.revoke" >/dev/null
t_like "$(jq -r '[.entries[] | .actor.id + " " + .target.id] | join(",")' "$T_TMP/body")" \
	"admin-a $(key_id "$SPARE")" "revoking through the API is an audit entry"
t_like "$(jq -r '[.entries[].target.id] | join(",")' "$T_TMP/body")" "$(key_id "$REVOKED")" "…and through the CLI"
req "$ROOT" GET "/v1/audit?action=key.create&limit=500" >/dev/null
t_is "$(jq -r '.entries | length' "$T_TMP/body")" 8 "every key creation is an audit entry"
t_unlike "$(cat "$T_TMP/body")" "$(printf '%s' "$ROOT" | cut -d_ -f4)" "…without the secret"
costs() { req "$1" GET "/v1/costs?group_by=tenant" >/dev/null; jq -r '[.groups[].key] | join(",")' "$T_TMP/body"; }
t_is "$(costs "$OPERATOR")" acme "acme's key sees acme's model spend (gateway calls count for the key's tenant)"
t_is "$(costs "$OTHER")" globex "globex's key sees only globex's (its own chat call in the matrix)"
req "$ADMIN" GET /v1/keys >/dev/null
t_is "$(jq -r '[.keys[].tenant] | unique | join(",")' "$T_TMP/body")" acme "acme's admin lists acme's keys only"
req "$ROOT" GET /v1/keys >/dev/null
t_like "$(jq -r '[.keys[].tenant] | unique | join(",")' "$T_TMP/body")" 'globex' "a key of tenant * lists every key"
t_is "$(req "$ADMIN" POST "/v1/keys/$(key_id "$OTHER")/revoke")" 404 "acme's admin cannot revoke globex's key"
t_is "$(req "$OTHER" GET "/v1/runs/$RUN_G")" 200 "…which still works"
t_is "$(req "$SPARE" GET /v1/runs)" 401 "a key revoked through the API is refused at once"

# the CLI sends SLUICE_TOKEN
t_like "$(SLUICE_TOKEN=$VIEWER "$SLUICE" runs list --server "$URL" 2>&1)" "$RUN_A" \
	"sluice runs list with a viewer's SLUICE_TOKEN"
t_like "$(SLUICE_TOKEN=$VIEWER "$SLUICE" runs cancel "$RUN_G" --server "$URL" 2>&1)" "403" "…which cannot cancel"
t_like "$(CURL_HOME=/nonexistent SLUICE_TOKEN= "$SLUICE" runs list --server "$URL" 2>&1)" "401" \
	"…and without a key the server says 401"

# a principal removed from policies.yaml loses its keys at the next start
kill "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
sed -i '/operator-g/d' "$P/policies.yaml"
SLUICE_TOKEN=$ROOT start_serve_dir "$P"
req "$OTHER" GET /v1/runs >/dev/null
t_like "$(jq -r .detail "$T_TMP/body")" "no longer declared" "a key whose principal left policies.yaml is refused"

# policies.yaml mistakes are FILE:LINE:COL errors in sluice check
printf 'tenants: [acme]\nprincipals:\n  - { name: alice, tenant: nowhere, role: operator }\n  - { name: bob, role: superuser }\n' \
	>"$P/policies.yaml"
out=$("$SLUICE" check "$P" 2>&1)
t_like "$out" "policies.yaml:3:[0-9]+: error: tenant 'nowhere' is not declared under tenants:" \
	"sluice check: an undeclared tenant, at FILE:LINE:COL"
t_like "$out" "policies.yaml:4:[0-9]+: error: role 'superuser' is not one of viewer, operator, admin" "…an unknown role"
t_done
