# tap.sh: a few TAP helpers for integration tests written in sh/bash.
# Source it, call the t_* functions, end with t_done (prints the plan).
# Also: starting helper servers on a free loopback port, and clean-up.
T_N=0
T_FAIL=0
SLUICE=${SLUICE_BIN:?}
BUILD=${SLUICE_BUILD:?}
TOP=${SLUICE_TOP:?}
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX")
T_PIDS=""
# The example's models.yaml reads its model API key from here; tests that
# use the example and no model simulator get the local classifier's answer
# (the escalation finds no model and the route keeps the best it has).
export OPENAI_API_KEY=${OPENAI_API_KEY:-sk-test-example}

# keep_logs: copies the test's logs (*.err, *.log, *.out) and the values of
# its secret-looking variables to $SLUICE_LOG_DIR, where tests/final/
# secrets.t checks that no secret reached a log.
keep_logs() {
	[ -n "${SLUICE_LOG_DIR:-}" ] && [ -d "$SLUICE_LOG_DIR" ] || return 0
	d="$SLUICE_LOG_DIR/$(basename "$0" .t).$$"
	mkdir -p "$d"
	find "$T_TMP" -maxdepth 2 -type f \( -name '*.err' -o -name '*.log' -o -name '*.out' \) \
		-exec sh -c 'cp "$1" "$2/$(echo "${1#$3/}" | tr / _)"' _ {} "$d" "$T_TMP" \; 2>/dev/null
	env | sed -n 's/^[A-Z_]*\(TOKEN\|SECRET\|PASSWORD\|_KEY\)[A-Z_]*=\(.\{8,\}\)$/\2/p' >"$d/.secrets"
}

t_cleanup() {
	exec 2>/dev/null # the shell reports the helpers it kills; that is not news
	for p in $T_PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	keep_logs
	rm -rf "$T_TMP"
}
trap t_cleanup EXIT

t_pass() { T_N=$((T_N + 1)); echo "ok $T_N - $1"; }
t_fail() {
	T_N=$((T_N + 1)); T_FAIL=$((T_FAIL + 1))
	echo "not ok $T_N - $1"
	shift
	for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /' >&2; done
}
# t_ok DESC CMD...: passes when CMD exits 0.
t_ok() { d=$1; shift; if "$@" >"$T_TMP/.out" 2>&1; then t_pass "$d"; else t_fail "$d" "command: $*" "$(tail -20 "$T_TMP/.out")"; fi; }
# t_is GOT WANT DESC
t_is() { if [ "$1" = "$2" ]; then t_pass "$3"; else t_fail "$3" "got:  '$1'" "want: '$2'"; fi; }
# t_like TEXT REGEX DESC (grep -E)
t_like() { if printf '%s\n' "$1" | grep -Eq -- "$2"; then t_pass "$3"; else t_fail "$3" "text: $(printf '%s' "$1" | head -c 2000)" "want match: $2"; fi; }
t_unlike() { if printf '%s\n' "$1" | grep -Eq -- "$2"; then t_fail "$3" "text: $(printf '%s' "$1" | head -c 2000)" "must not match: $2"; else t_pass "$3"; fi; }
t_diag() { printf '# %s\n' "$*" >&2; }
t_done() { echo "1..$T_N"; [ "$T_FAIL" -eq 0 ]; exit $?; }

# start_target [ARGS...]: starts the test HTTP target on a free port; sets
# TARGET_PID and TARGET_URL.
start_target() {
	out="$T_TMP/target.$$.$RANDOM"
	"$BUILD/tests/target_server" --port 0 "$@" >"$out" 2>"$out.err" &
	TARGET_PID=$!
	T_PIDS="$T_PIDS $TARGET_PID"
	i=0
	while ! grep -q 'listening on' "$out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then echo "target_server did not start: $(cat "$out.err")" >&2; return 1; fi
		sleep 0.05
	done
	TARGET_URL="http://$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$out" | head -1)"
}

# project_copy SRC: copies a project into the temp dir pointing its http
# connectors at TARGET_URL; prints the new path. The target runs on
# loopback, which a connector reaches only when its allow_hosts names it: a
# connector without allow_hosts gets one naming the target's host.
project_copy() {
	dst="$T_TMP/$(basename "$1").$RANDOM"
	cp -r "$1" "$dst"
	rm -rf "$dst/.sluice" "$dst/out"
	if [ -n "${TARGET_URL:-}" ]; then
		thost=${TARGET_URL#*://}
		thost=${thost%%/*}
		case $thost in
		\[*) thost=${thost%%]*}; thost=${thost#?} ;;
		*) thost=${thost%%:*} ;;
		esac
		for f in "$dst"/connectors/*.yaml; do
			grep -q '^base_url:' "$f" || continue
			sed -i "s#^base_url: .*#base_url: $TARGET_URL#" "$f"
			grep -q '^allow_hosts:' "$f" && continue
			[ -z "$(tail -c 1 "$f")" ] || echo >>"$f"
			printf 'allow_hosts: ["%s"]\n' "$thost" >>"$f"
		done
	fi
	echo "$dst"
}

# project_no_approval DIR: drops what would make a person decide in DIR's
# support-triage workflow, for tests that count runs to completion without
# a reviewer: the billing approval step, and the classifier's
# `demote_on: [drift]` (a test's synthetic mails drift from the first ones,
# and a demoted classifier's ticket write waits for an approval).
project_no_approval() {
	perl -0pi -e 's/\n  # Billing tickets touch money.*?(?=\n  - id: ticket)//s; s/\(\.confirm_billing\.final\.label \/\/ \.classify\.label\)/.classify.label/; s/\n *demote_on: \[drift\]//' \
		"$1/workflows/support-triage.yaml"
}

# start_model_sim ARGS...: starts `sluice sim model` on a free port; sets
# SIM_URL and SIM_PID.
start_model_sim() {
	out="$T_TMP/sim.model.$RANDOM"
	"$SLUICE" sim model --port 0 "$@" >"$out" 2>"$out.err" &
	SIM_PID=$!
	T_PIDS="$T_PIDS $SIM_PID"
	for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
	SIM_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$out" | head -1)
	[ -n "$SIM_URL" ] || { echo "sim model did not start: $(cat "$out.err")" >&2; return 1; }
}

# t_api_key DIR ROLE TENANT [ARGS...]: creates an API key on DIR's store
# (ARGS: --store URL, --expires, ...) for principal t-ROLE; prints it.
t_api_key() {
	d=$1 role=$2 tenant=$3; shift 3
	"$SLUICE" keys create --principal "t-$role" --role "$role" --tenant "$tenant" "$@" "$d" 2>>"$T_TMP/keys.err"
}

# t_auth DIR [ARGS...]: the test's own admin key of every tenant: exported
# as SLUICE_TOKEN (the CLI sends it as a bearer token) and put in a curl
# config that every plain `curl` of the test reads (CURL_HOME), so the
# tests' curl lines stay as they are. `curl -q` skips it (authz.t does).
t_auth() {
	SLUICE_TOKEN=$(t_api_key "$1" admin '*' "${@:2}") && [ -n "$SLUICE_TOKEN" ] ||
		{ echo "sluice keys create failed: $(cat "$T_TMP/keys.err")" >&2; return 1; }
	export SLUICE_TOKEN
	printf 'header = "Authorization: Bearer %s"\n' "$SLUICE_TOKEN" >"$T_TMP/.curlrc"
	export CURL_HOME=$T_TMP
}

# start_serve_dir DIR [ARGS...]: serves DIR on a free port (with an admin
# key, see t_auth, unless the test made one); sets SERVE_PID and URL.
start_serve_dir() {
	d=$1; shift
	[ -n "${SLUICE_TOKEN:-}" ] || t_auth "$d" || return 1
	"$SLUICE" serve --listen 127.0.0.1:0 "$@" "$d" >"$T_TMP/serve.out" 2>"$T_TMP/serve.err" &
	SERVE_PID=$!
	T_PIDS="$T_PIDS $SERVE_PID"
	i=0
	while ! grep -q 'serving' "$T_TMP/serve.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 $SERVE_PID 2>/dev/null; then
			echo "serve did not start: $(cat "$T_TMP/serve.err")" >&2; return 1
		fi
		sleep 0.05
	done
	URL=$(sed -n 's/.* on \(http:[^ ]*\).*/\1/p' "$T_TMP/serve.out" | head -1)
}

target_stats() { curl -sf "$TARGET_URL/__stats"; }
