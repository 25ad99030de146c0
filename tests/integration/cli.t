#!/bin/bash
# The command line itself: --help on every verb, and bad option values get a
# clear usage error (exit 2) naming the option.
. "$SLUICE_TOP/tests/lib/tap.sh"
for verb in check validate run serve runs dlq sim model keys pause resume version; do
	out=$("$SLUICE" "$verb" --help 2>&1); rc=$?
	t_is "$rc" 0 "sluice $verb --help exits 0"
	t_like "$out" "^Usage: sluice $verb" "sluice $verb --help starts with its usage"
done
t_like "$("$SLUICE" --help)" 'serve +run the engine' "sluice --help lists the verbs"
bad() { # DESC WANT_REGEX ARGS...
	d=$1 want=$2; shift 2
	out=$("$SLUICE" "$@" 2>&1); rc=$?
	t_is "$rc" 2 "$d: exit 2"
	t_like "$out" "$want" "$d: says why"
}
bad "run --workers 99" '--workers wants a number from 1 to 64' run --workers 99 x y
bad "run --workers abc" '--workers wants a number' run --workers abc x y
bad "run --timeout soon" '--timeout wants a duration' run --timeout soon x y
bad "serve --max-inflight 0" '--max-inflight wants a number from 1 to 100000' serve --max-inflight 0 x
bad "serve --log-level loud" "unknown log level 'loud'" serve --log-level loud x
bad "sim --port 70000" '--port wants a number from 0 to 65535' sim --port 70000 helpdesk
bad "sim --error-rate 2" '--error-rate wants a probability' sim --error-rate 2 helpdesk
bad "runs list --limit 0" '--limit wants a number from 1 to 500' runs list --limit 0
bad "run without a workflow" 'want DIR and WORKFLOW' run x
bad "keys create without a principal" 'create wants --principal NAME' keys create --store sqlite::memory:
bad "keys create --expires soon" '--expires wants 30d' keys create --principal a --expires soon --store sqlite::memory:
bad "keys create --role root" '--role is viewer, operator or admin' keys create --principal a --role root --store sqlite::memory:
bad "keys revoke without an id" 'revoke wants a key ID' keys revoke
bad "keys frob" "unknown subcommand 'frob'" keys frob
bad "pause planet x" 'KIND is workflow, connector or provider' pause planet x
bad "resume without a name" 'want KIND NAME' resume workflow
t_done
