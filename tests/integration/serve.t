#!/bin/bash
# sluice serve: the run API and signed webhooks over real HTTP, with the
# example project against the local helpdesk stand-in; `sluice runs` and
# `sluice dlq` as clients.
. "$SLUICE_TOP/tests/lib/tap.sh"

export HELPDESK_TOKEN=test-token-5f2a9c
export EMAIL_HOOK_SECRET=whsec-test-3b7e1d
export EMAIL_HOOK_SECRET_PREVIOUS=whsec-old-9a0c44
start_target --require-bearer "$HELPDESK_TOKEN" --state "$T_TMP/effects.jsonl"
P=$(project_copy "$TOP/examples/support-triage")
sed -i 's#webhook: { path: /hooks/email, contract: inbound_email@1 }#webhook: { path: /hooks/email, contract: inbound_email@1, hmac_secret: env:EMAIL_HOOK_SECRET }#' \
	"$P/workflows/support-triage.yaml"
printf 'workflow: dies\nversion: 1\nsteps:\n  - id: boom\n    map: %s\n' "'error(\"boom\")'" >"$P/workflows/dies.yaml"

# start_serve: serves $P on a free port; sets SERVE_PID and URL.
start_serve() {
	"$SLUICE" serve --listen 127.0.0.1:0 --max-body 8192 --max-inflight 4 "$P" >"$T_TMP/serve.out" \
		2>"$T_TMP/serve.err" &
	SERVE_PID=$!
	T_PIDS="$T_PIDS $SERVE_PID"
	i=0
	while ! grep -q 'serving' "$T_TMP/serve.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ]; then echo "serve did not start: $(cat "$T_TMP/serve.err")" >&2; return 1; fi
		sleep 0.05
	done
	URL=$(sed -n 's/.* on \(http:[^ ]*\).*/\1/p' "$T_TMP/serve.out" | head -1)
}
t_auth "$P" || exit 1
start_serve
t_like "$(cat "$T_TMP/serve.out")" "^sluice: serving .* on http://127\.0\.0\.1:[0-9]+$" "serve prints the address it listens on"

# code METHOD PATH [curl args]: prints "STATUS BODY"
code() { m=$1; p=$2; shift 2; curl -s -o "$T_TMP/body" -w '%{http_code}' -X "$m" "$@" "$URL$p"; }

t_is "$(code GET /healthz)" 200 "/healthz answers 200"
t_is "$(jq -r .status "$T_TMP/body")" ok "…with status ok"
t_is "$(code GET /readyz)" 200 "/readyz answers 200"
t_is "$(code GET /v1/workflows)" 200 "/v1/workflows answers 200"
t_is "$(jq -r '.workflows[] | select(.name=="support-triage") | .trigger.path' "$T_TMP/body")" /hooks/email \
	"…listing the webhook trigger"
t_is "$(code GET /v1/openapi.json)" 200 "/v1/openapi.json answers 200"
t_is "$(jq -r .openapi "$T_TMP/body")" 3.1.0 "…an OpenAPI 3.1 document"

# The run API.
st=$(code POST /v1/workflows/support-triage/runs -H 'Content-Type: application/json' \
	-H 'Idempotency-Key: api-1' --data-binary @"$P/fixtures/email-1.json")
t_is "$st" 202 "POST /v1/workflows/support-triage/runs answers 202"
RUN1=$(jq -r .run_id "$T_TMP/body")
st=$(code POST /v1/workflows/support-triage/runs -H 'Idempotency-Key: api-1' --data-binary @"$P/fixtures/email-1.json")
t_is "$st" 200 "the same Idempotency-Key answers 200"
t_is "$(jq -r .run_id "$T_TMP/body")" "$RUN1" "…with the first run's id"
st=$(code POST /v1/workflows/support-triage/runs --data-binary @"$P/fixtures/email-bad.json")
t_is "$st" 400 "a bad input answers 400"
t_like "$(jq -r '.errors[].pointer' "$T_TMP/body")" '^/from$' "…naming /from"
ct=$(curl -s -o /dev/null -w '%{content_type}' "$URL/v1/runs/run_NOPE")
t_is "$ct" application/problem+json "an unknown run answers problem+json"
head -c 10000 /dev/zero | tr '\0' ' ' >"$T_TMP/big.json"
t_is "$(code POST /v1/workflows/support-triage/runs --data-binary @"$T_TMP/big.json")" 413 "a body over --max-body answers 413"

# Signed webhooks: GitHub style.
F="$P/fixtures/email-urgent.json"
sig=$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" <"$F" | sed 's/^.*= //')
st=$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$sig" -H 'X-GitHub-Delivery: d-1' --data-binary @"$F")
t_is "$st" 202 "a signed webhook answers 202"
HOOK1=$(jq -r .run_id "$T_TMP/body")
st=$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$sig" -H 'X-GitHub-Delivery: d-1' --data-binary @"$F")
t_is "$st" 200 "a replayed delivery id answers 200"
t_is "$(jq -r .run_id "$T_TMP/body")" "$HOOK1" "…with the first run's id"
case "$sig" in 0*) bad="1${sig#?}";; *) bad="0${sig#?}";; esac
st=$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$bad" -H 'X-GitHub-Delivery: d-2' --data-binary @"$F")
t_is "$st" 401 "a flipped signature byte answers 401"
t_is "$(jq -r .detail "$T_TMP/body")" "signature invalid" "…signature invalid"
st=$(code POST /hooks/email -H 'X-GitHub-Delivery: d-3' --data-binary @"$F")
t_is "$st" 401 "a missing signature answers 401"
t_is "$(jq -r .detail "$T_TMP/body")" "signature missing" "…signature missing"
wrong=$(openssl dgst -sha256 -hmac "not-the-secret" <"$F" | sed 's/^.*= //')
t_is "$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$wrong" --data-binary @"$F")" 401 "the wrong secret answers 401"
prev=$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET_PREVIOUS" <"$P/fixtures/email-1.json" | sed 's/^.*= //')
st=$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$prev" -H 'X-GitHub-Delivery: d-4' \
	--data-binary @"$P/fixtures/email-1.json")
t_is "$st" 202 "the previous secret is accepted during rotation"
HOOK2=$(jq -r .run_id "$T_TMP/body")

# Stripe style: t=TS,v1=HMAC("TS.BODY"), 300 s tolerance.
stripe() { # TS FILE -> the header value
	printf 't=%s,v1=%s' "$1" "$({ printf '%s.' "$1"; cat "$2"; } | openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" | sed 's/^.*= //')"
}
# The server compares whole seconds: take `now` early in a second, so the
# clock cannot tick between here and the server's check and turn "301 s
# ahead" into 300.
while [ "$(date +%N | cut -c1)" -ge 5 ]; do sleep 0.05; done
now=$(date +%s)
t_is "$(code POST /hooks/email -H "Stripe-Signature: $(stripe $((now - 301)) "$F")" --data-binary @"$F")" 401 \
	"a Stripe timestamp 301 s old answers 401"
t_is "$(jq -r .detail "$T_TMP/body")" "timestamp outside tolerance" "…timestamp outside tolerance"
t_is "$(code POST /hooks/email -H "Stripe-Signature: $(stripe $((now + 301)) "$F")" --data-binary @"$F")" 401 \
	"a Stripe timestamp 301 s ahead answers 401"
t_is "$(code POST /hooks/email -H "Stripe-Signature: $(stripe "$now" "$F")" -H 'X-Delivery-Id: s-1' --data-binary @"$F")" 202 \
	"a valid Stripe signature answers 202"
badsig=$(openssl dgst -sha256 -hmac "$EMAIL_HOOK_SECRET" <"$P/fixtures/email-bad.json" | sed 's/^.*= //')
st=$(code POST /hooks/email -H "X-Hub-Signature-256: sha256=$badsig" --data-binary @"$P/fixtures/email-bad.json")
t_is "$st" 400 "a signed body that breaks the contract answers 400"

# The runs complete and show in `sluice runs`.
wait_done() { # RUN_ID
	for _ in $(seq 1 200); do
		s=$("$SLUICE" runs show --json --server "$URL" "$1" 2>/dev/null | jq -r .status)
		case "$s" in completed | dead | cancelled | compensated) echo "$s"; return;; esac
		sleep 0.05
	done
	echo "$s"
}
t_is "$(wait_done "$RUN1")" completed "the API run completes"
t_is "$(wait_done "$HOOK1")" completed "the webhook run completes"
t_is "$(wait_done "$HOOK2")" completed "the run signed with the previous secret completes"
out=$("$SLUICE" runs list --server "$URL" 2>&1)
t_like "$out" "$HOOK1 +support-triage +1 +completed" "sluice runs list shows the webhook run as completed"
t_is "$("$SLUICE" runs list --json --server "$URL" --workflow support-triage --limit 2 | jq '.runs | length')" 2 \
	"sluice runs list --json --limit 2 pages"
t_like "$("$SLUICE" runs show --server "$URL" "$RUN1")" 'create +completed' "sluice runs show prints the steps"
"$SLUICE" runs cancel --server "$URL" "$RUN1" >/dev/null 2>"$T_TMP/cancel.err"; rc=$?
t_is "$rc" 1 "sluice runs cancel of an ended run exits 1"
t_like "$(cat "$T_TMP/cancel.err")" '409' "…reporting the 409"
t_is "$("$SLUICE" dlq list --json --server "$URL" | jq '.entries | length')" 0 "sluice dlq list: nothing dead"
# Dead runs through `sluice dlq`.
code POST /v1/workflows/dies/runs -d '{}' >/dev/null
DEAD=$(jq -r .run_id "$T_TMP/body")
t_is "$(wait_done "$DEAD")" dead "a failing run goes dead"
out=$("$SLUICE" dlq list --server "$URL" --workflow dies)
t_like "$out" "$DEAD +dies +boom +permanent" "sluice dlq list shows it"
ENTRY=$("$SLUICE" dlq list --json --server "$URL" --workflow dies | jq -r '.entries[0].id')
t_like "$("$SLUICE" dlq replay --server "$URL" "$ENTRY")" "entry $ENTRY replayed: run $DEAD queued" "sluice dlq replay ID"
t_is "$(wait_done "$DEAD")" dead "…the replayed run fails again (same input)"
"$SLUICE" dlq replay --server "$URL" "$ENTRY" >/dev/null 2>&1; rc=$?
t_is "$rc" 1 "replaying an entry twice exits 1"
t_like "$("$SLUICE" dlq replay --all --server "$URL" --workflow dies --error-class permanent 2>"$T_TMP/replay.err")" \
	'^1 replayed, 0 failed' "sluice dlq replay --all by filter"
t_like "$(cat "$T_TMP/replay.err")" '1 of 1 done \(1 replayed, 0 failed\)' "…showing its progress on stderr"
"$SLUICE" runs list --server http://127.0.0.1:1 >/dev/null 2>&1; rc=$?
t_is "$rc" 2 "a server that is not there exits 2"

# One JSON log line per request, with the correlation id; no secret.
curl -s -o /dev/null -H 'X-Correlation-Id: corr-serve-t' "$URL/healthz"
sleep 0.2
t_like "$(grep '"path":"/healthz"' "$T_TMP/serve.err" | tail -1)" '"correlation_id":"corr-serve-t"' \
	"the request log line carries the correlation id"
t_unlike "$(cat "$T_TMP/serve.err" "$T_TMP/serve.out")" "$EMAIL_HOOK_SECRET|$HELPDESK_TOKEN" "no secret is logged"

# 405 names the methods the path has.
t_like "$(curl -s -D- -o /dev/null -X DELETE "$URL/v1/runs/run_x")" 'Allow: GET' "405 carries an Allow header"
t_is "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL/healthz")" 200 "HEAD works where GET does"

# Overload: four senders that never finish their bodies hold the four
# in-flight slots (--max-inflight 4); the next request gets 429 with
# Retry-After, a probe still gets 200, and the slots come back when the
# senders go.
HOSTPORT=${URL#http://}
for fd in 5 6 7 8; do
	eval "exec $fd<>/dev/tcp/${HOSTPORT%:*}/${HOSTPORT#*:}"
	printf 'POST /v1/workflows/dies/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{' >&$fd
done
sleep 0.3
out=$(curl -s -D- "$URL/v1/workflows")
t_like "$out" 'HTTP/1.1 429' "past --max-inflight: 429"
t_like "$out" 'Retry-After: 1' "…with Retry-After"
t_like "$out" 'application/problem\+json' "…as problem+json"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" 200 "…while /healthz still answers 200"
for fd in 5 6 7 8; do eval "exec $fd>&-"; done
ok=0
for i in $(seq 1 50); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/workflows")" = 200 ] && { ok=1; break; }
	sleep 0.1
done
t_is "$ok" 1 "the slots come back when the slow senders go"

# Graceful stop.
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"; rc=$?
t_is "$rc" 0 "SIGTERM stops serve cleanly (exit 0)"
t_done
