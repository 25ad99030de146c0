#!/bin/bash
# sluice validate SCHEMA [INSTANCE|-]
. "$SLUICE_TOP/tests/lib/tap.sh"
EX="$TOP/examples/support-triage"
S="$EX/contracts/inbound_email.json"

out=$("$SLUICE" validate "$S" "$EX/fixtures/email-1.json" 2>&1); rc=$?
t_is "$rc" 0 "a valid instance exits 0"

out=$("$SLUICE" validate "$S" "$EX/fixtures/email-bad.json" 2>&1); rc=$?
t_is "$rc" 1 "an invalid instance exits 1"
t_like "$out" '/from' "the error names /from (format email)"
t_like "$out" '/subject' "the error names /subject (type)"
t_like "$out" 'text' "the missing required property is named"
t_like "$out" '/message_id' "minLength on /message_id"

out=$("$SLUICE" validate "$S" - < "$EX/fixtures/email-1.json" 2>&1); rc=$?
t_is "$rc" 0 "reads the instance from stdin with -"

out=$("$SLUICE" validate --json "$S" "$EX/fixtures/email-bad.json" 2>/dev/null); rc=$?
t_is "$(printf '%s' "$out" | jq -r '.valid')" false "--json valid: false"
t_is "$(printf '%s' "$out" | jq -r '[.errors[].pointer] | index("/from") != null')" true "--json lists pointers"

# A cross-document $ref (ticket@1 -> inbound_email@1) resolves from the folder.
printf '{"subject":"s","body":"b","requester":"x@example.com","priority":"high"}' > "$T_TMP/t.json"
out=$("$SLUICE" validate "$EX/contracts/ticket.json" "$T_TMP/t.json" 2>&1); rc=$?
t_is "$rc" 0 "cross-document \$ref resolves"
printf '{"subject":"s","body":"b","requester":"nope","priority":"urgent"}' > "$T_TMP/t2.json"
out=$("$SLUICE" validate "$EX/contracts/ticket.json" "$T_TMP/t2.json" 2>&1); rc=$?
t_is "$rc" 1 "cross-document \$ref applies the referenced rule"
t_like "$out" '/requester' "…and names /requester"
t_like "$out" '/priority' "enum failure names /priority"

printf '{"type": "object", "properties": {"a": {"pattern": "(unclosed"}}}' > "$T_TMP/bad-schema.json"
out=$("$SLUICE" validate "$T_TMP/bad-schema.json" "$T_TMP/t.json" 2>&1); rc=$?
t_is "$rc" 1 "a schema with a broken pattern exits 1"
t_like "$out" 'pattern' "…saying which pattern"

printf '{"a": ' > "$T_TMP/broken.json"
out=$("$SLUICE" validate "$S" "$T_TMP/broken.json" 2>&1); rc=$?
t_is "$rc" 2 "unparseable JSON exits 2"
t_like "$out" 'broken.json:1:' "…with its position"

out=$("$SLUICE" validate 2>&1); rc=$?
t_is "$rc" 2 "no arguments is a usage error"
t_done
