#!/bin/bash
# sluice model: the built-in local models through the real binary: train
# the support-triage classifier from the shipped set, predict, measure it
# on the test set, run the extractors; errors and exit codes.
. "$SLUICE_TOP/tests/lib/tap.sh"

P="$T_TMP/proj"
mkdir -p "$P/models"
cp "$TOP"/examples/support-triage/models/triage.train.jsonl "$TOP"/examples/support-triage/models/triage.test.jsonl "$P/models/"

# ---- train ----------------------------------------------------------------------------
out=$("$SLUICE" model train "$P" triage 2>&1); rc=$?
t_is "$rc" 0 "model train exits 0"
t_like "$out" 'model triage: 5 labels, [0-9]+ examples' "…says the labels and examples"
t_like "$out" 'feature_request +[0-9]+' "…lists each label's count"
t_like "$out" 'held-out accuracy +0\.(9|8)[0-9]+' "…prints a held-out accuracy"
t_like "$out" 'held-out macro-F1 +0\.(9|8)[0-9]+' "…and a held-out macro-F1"
t_like "$out" 'temperature +[0-9.]+ +\(ECE [0-9.]+ -> [0-9.]+\)' "…and the calibration"
t_ok "…writes NAME.json" test -s "$P/models/triage.json"
t_ok "…and NAME.liblinear" test -s "$P/models/triage.liblinear"
t_is "$(jq -r '.labels | join(",")' "$P/models/triage.json")" "account,billing,bug,feature_request,shipping" "the .json has the labels, sorted"
t_is "$(jq -r .training_sha256 "$P/models/triage.json")" "$(sha256sum "$P/models/triage.train.jsonl" | cut -d' ' -f1)" "…and the training set's sha256"
t_like "$(jq -r '.temperature, .metrics.cv_macro_f1, .created' "$P/models/triage.json" | tr '\n' ' ')" '^[0-9.]+ 0\.[0-9]+ 20[0-9-]+T' "…temperature, metrics and created time"

# ---- predict ----------------------------------------------------------------------------
out=$("$SLUICE" model predict "$P" triage "Subject: parcel missing

My order #55512 was supposed to arrive on Friday but the courier has no idea where it is."); rc=$?
t_is "$rc" 0 "model predict exits 0"
t_is "$(printf '%s' "$out" | jq -r .label)" shipping "…and says shipping"
t_like "$(printf '%s' "$out" | jq -r .confidence)" '^(0\.[0-9]+|1(\.0+)?)$' "…with a confidence in (0,1]"
t_is "$(printf '%s' "$out" | jq '[.probabilities[]] | add | . * 1000 | round')" 1000 "…probabilities sum to 1"
out2=$(printf 'I was charged twice for my subscription, please refund' | "$SLUICE" model predict "$P" triage -)
t_is "$(printf '%s' "$out2" | jq -r .label)" billing "predict reads stdin with -"
a=$("$SLUICE" model predict "$P" triage "app crashes on startup")
b=$("$SLUICE" model predict "$P" triage "app crashes on startup")
t_is "$a" "$b" "predict is deterministic"

# ---- eval-local ---------------------------------------------------------------------------
out=$("$SLUICE" model eval-local "$P" triage "$P/models/triage.test.jsonl"); rc=$?
t_is "$rc" 0 "model eval-local exits 0"
t_like "$out" '^label +precision +recall +f1 +support' "…prints a table"
t_like "$out" 'shipping +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+' "…a row per label"
t_like "$out" 'macro-F1 +0\.(9|8)[0-9]+' "…and the macro-F1 ($(printf '%s' "$out" | sed -n 's/^macro-F1 *//p'))"
t_like "$out" 'accuracy +[0-9.]+ +\([0-9]+ of [0-9]+\)' "…and the accuracy"
j=$("$SLUICE" model eval-local --json "$P" triage "$P/models/triage.test.jsonl")
t_is "$(printf '%s' "$j" | jq '.macro_f1 >= 0.85 and .ece < 0.15')" true "eval-local --json: macro-F1 and ECE"
t_is "$(printf '%s' "$j" | jq '[.confusion[][]] | add')" "$(printf '%s' "$j" | jq .examples)" "…the confusion matrix counts every example"

# ---- extract -------------------------------------------------------------------------------
out=$("$SLUICE" model extract 'Invoice INV-2026-0042 from billing@acme.example: EUR 1.234,50 due 23/11/2026. IBAN DE89 3704 0044 0532 0130 00, call +49 30 1234567'); rc=$?
t_is "$rc" 0 "model extract exits 0"
t_is "$(printf '%s' "$out" | jq -c '[.emails[0], .phones[0], .amounts[0].amount, .amounts[0].currency, .dates[0], .ibans[0], .invoice_numbers[0]]')" \
	'["billing@acme.example","+49 30 1234567",1234.5,"EUR","2026-11-23","DE89370400440532013000","INV-2026-0042"]' "…finds each kind, normalised"
out=$(printf 'nothing to see here' | "$SLUICE" model extract -)
t_is "$out" '{"emails":[],"phones":[],"amounts":[],"dates":[],"ibans":[],"invoice_numbers":[]}' "extract from stdin, nothing found"
t_is "$("$SLUICE" model extract 'IBAN DE89 3704 0044 0532 0130 01' | jq '.ibans | length')" 0 "an IBAN with a bad check digit is not one"

# ---- routes: list, test, eval ---------------------------------------------------------------
# The trained model as the first of a cascade; the simulated OpenAI model
# answers when it is unsure.
start_model_sim
printf 'store: sqlite:.sluice/sluice.db\n' >"$P/sluice.yaml"
cat >"$P/models.yaml" <<EOF
providers:
  local: { type: local }
  sim: { type: openai, base_url: "$SIM_URL/v1" }
models:
  triage-local: { provider: local, model: triage }
  gpt: { provider: sim, model: gpt-4o-mini, price: { input: 0.15, output: 0.6 } }
routes:
  local-only: { models: [triage-local] }
  cascade: { models: [triage-local, gpt], escalate_below: 0.6 }
EOF
out=$("$SLUICE" model list "$P"); rc=$?
t_is "$rc" 0 "model list exits 0"
t_like "$out" 'local-only +classify, extract, route' "…a local route classifies, extracts, routes"
t_like "$out" 'cascade +classify, extract, summarize, draft, route, chat' "…a route with an API model does every task"
out=$("$SLUICE" model test "$P" cascade --labels billing,bug,account,feature_request,shipping \
	"Subject: charged twice\n\nMy card was billed twice for the March invoice." 2>"$T_TMP/test.err"); rc=$?
t_is "$rc" 0 "model test exits 0"
t_is "$(printf '%s' "$out" | jq -r '.label + " " + .model')" "billing triage-local" "…the local model answers a clear case"
t_like "$(cat "$T_TMP/test.err")" 'call 1: model triage-local, ok, 0\+0 tokens' "…and says what each call cost"
local_f1=$("$SLUICE" model eval-local --json "$P" triage "$P/models/triage.test.jsonl" | jq .macro_f1)
route=$("$SLUICE" model eval --json "$P" local-only "$P/models/triage.test.jsonl"); rc=$?
t_is "$rc" 0 "model eval exits 0"
t_is "$(printf '%s' "$route" | jq .items)" 125 "…over every item"
t_is "$(printf '%s' "$route" | jq "(.macro_f1 - $local_f1) | fabs < 0.000001")" true \
	"…a local-only route scores what eval-local does ($local_f1)"
cas=$("$SLUICE" model eval --json "$P" cascade "$P/models/triage.test.jsonl")
t_is "$(printf '%s' "$cas" | jq '.cost_usd > 0 and .tokens_in > 0 and .failed == 0')" true \
	"the cascade escalates the unsure ones to the API model, and says what they cost"
t_is "$(printf '%s' "$cas" | jq '.latency_p95_ms >= .latency_p50_ms')" true "…with p50 and p95 latency"
out=$("$SLUICE" model eval "$P" cascade "$P/models/triage.test.jsonl")
t_like "$out" 'macro-F1 0\.[0-9]+' "model eval prints a table with macro-F1"
t_like "$out" 'cost \$[0-9.]+ .* p95 [0-9.]+ ms' "…cost and p95 latency"
bad_route=$("$SLUICE" model eval "$P" nope "$P/models/triage.test.jsonl" 2>&1); rc=$?
t_is "$rc" 2 "model eval of an unknown route exits 2"
t_like "$bad_route" "no route 'nope'" "…and names it"

# ---- errors and exit codes ----------------------------------------------------------------------
for sub in list test eval train predict extract eval-local; do
	out=$("$SLUICE" model "$sub" --help 2>&1); rc=$?
	t_is "$rc" 0 "model $sub --help exits 0"
	t_like "$out" "Usage: sluice model $sub" "…and describes it"
done
out=$("$SLUICE" model help predict); rc=$?
t_is "$rc:$(printf '%s' "$out" | head -1)" "0:Usage: sluice model predict DIR NAME TEXT|-" "model help SUB prints that subcommand's usage"
bad() { # DESC RC WANT_REGEX ARGS...
	d=$1 want_rc=$2 want=$3; shift 3
	out=$("$SLUICE" "$@" 2>&1); rc=$?
	t_is "$rc" "$want_rc" "$d: exit $want_rc"
	t_like "$out" "$want" "$d: says why"
}
bad "no subcommand" 2 'Usage: sluice model' model
bad "unknown subcommand" 2 "unknown subcommand 'trian' \(did you mean 'train'\?\)" model trian
bad "train without NAME" 2 'want DIR and NAME' model train "$P"
bad "train --c 0" 2 '--c wants a number above 0' model train --c 0 "$P" triage
bad "train --bits 30" 2 '--bits wants a number from 10 to 24' model train --bits 30 "$P" triage
bad "train a bad name" 2 "'../x' is not a model name" model train "$P" ../x
bad "train without data" 2 'nope.train.jsonl: No such file' model train "$P" nope
printf '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": "c"}\n' >"$P/models/broken.train.jsonl"
bad "train on a bad line" 1 'broken.train.jsonl:3: error: "label" must be a non-empty string' model train "$P" broken
bad "predict an unknown model" 2 'no such model' model predict "$P" nope "hello"
bad "predict without TEXT" 2 'want DIR, NAME and TEXT' model predict "$P" triage
bad "eval-local a bad file" 1 'broken.train.jsonl:3: error' model eval-local "$P" triage "$P/models/broken.train.jsonl"
bad "eval-local a missing file" 2 'No such file' model eval-local "$P" triage "$P/none.jsonl"
bad "extract with two args" 2 'want TEXT' model extract a b
t_done
