#!/bin/bash
# POST /v1/events: CloudEvents in structured, binary and batched modes are
# routed by type to workflows with trigger {event: TYPE} (the same table an
# emit step uses); a repeated (source, id) is a duplicate, not a second run;
# a bad event is a 400 problem naming what is wrong.
. "$SLUICE_TOP/tests/lib/tap.sh"

# the HTTP sink of on-order's emit: fails once, then takes each event once per key
start_target --state "$T_TMP/sink.jsonl" --status-sequence 503
P="$T_TMP/proj"
mkdir -p "$P/workflows" "$P/contracts" "$P/connectors"
cat >"$P/connectors/sink.yaml" <<EOF
connector: sink
type: http
base_url: $TARGET_URL
allow_hosts: [127.0.0.1]
actions:
  publish: { effect: write, method: POST, path: /events }
  peek: { effect: read, method: GET, path: /events }
EOF
printf 'name: events\nstore: sqlite:.sluice/sluice.db\nworkers: 2\nlog_level: warn\n' >"$P/sluice.yaml"
cat >"$P/contracts/order.json" <<'EOF'
{"$id": "order@1", "type": "object", "required": ["order_id"],
 "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}}}
EOF
cat >"$P/workflows/on-order.yaml" <<'EOF'
workflow: on-order
version: 1
trigger:
  event: { type: com.example.order.created, contract: order@1 }
steps:
  - id: seen
    map: '{order: .input.order_id}'
  - id: tell
    emit: { topic: com.example.order.seen, payload: '{order_id: .input.order_id}', sink: sink.publish }
    retry: { max_attempts: 3, base_ms: 10 }
EOF
cat >"$P/workflows/audit-order.yaml" <<'EOF'
workflow: audit-order
version: 1
trigger:
  event: com.example.order.created
steps:
  - id: note
    map: '{total: .input.total}'
EOF
cat >"$P/workflows/on-seen.yaml" <<'EOF'
workflow: on-seen
version: 1
trigger:
  event: com.example.order.seen
steps:
  - id: done
    map: '.input'
EOF
t_ok "the project checks" "$SLUICE" check "$P"
cp -r "$P" "$T_TMP/bad"
sed -i 's/sink: sink.publish/sink: sink.peek/' "$T_TMP/bad/workflows/on-order.yaml"
t_like "$("$SLUICE" check "$T_TMP/bad" 2>&1)" "on-order.yaml:[0-9]+:[0-9]+: .*emit sink 'sink.peek' must be an action with effect write" \
	"a sink action that only reads is a check error at its line"
start_serve_dir "$P"

# code [curl args]: POSTs to /v1/events; prints the status, keeps the body.
code() { curl -s -o "$T_TMP/body" -w '%{http_code}' -X POST "$@" "$URL/v1/events"; }
body() { jq -r "$1" "$T_TMP/body"; }
CE=application/cloudevents+json

# structured
ev='{"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.created","data":{"order_id":"A1","total":12.5}}'
t_is "$(code -H "Content-Type: $CE" --data "$ev")" 202 "a structured event answers 202"
t_is "$(body '.runs | length')" 2 "…starting both subscribed workflows"
t_is "$(body '[.runs[].workflow] | sort | join(",")')" "audit-order,on-order" "…by type"
RUN1=$(body .run_id)
t_like "$RUN1" '^run_' "…naming the first run"
t_is "$(code -H "Content-Type: $CE" --data "$ev")" 200 "the same (source, id) again answers 200"
t_is "$(body .duplicate)" true "…as a duplicate"
t_is "$(body .run_id)" "$RUN1" "…with the first run's id"
ev2=$(printf '%s' "$ev" | jq -c '.source = "/other-shop"')
t_is "$(code -H "Content-Type: $CE; charset=utf-8" --data "$ev2")" 202 "the same id from another source is a new event"

# binary
st=$(code -H 'ce-specversion: 1.0' -H 'ce-id: b-1' -H 'ce-source: /shop%2Fbinary' \
	-H 'ce-type: com.example.order.created' -H 'ce-subject: orders' -H 'Content-Type: application/json' \
	--data '{"order_id":"B1"}')
t_is "$st" 202 "a binary-mode event answers 202"
BRUN=$(body '.runs[] | select(.workflow == "on-order") | .run_id')
t_is "$(body .source)" /shop/binary "…its ce-* headers percent-decoded"
st=$(code -H 'ce-specversion: 1.0' -H 'ce-id: b-1' -H 'ce-source: /shop%2Fbinary' \
	-H 'ce-type: com.example.order.created' -H 'Content-Type: application/json' --data '{"order_id":"B1"}')
t_is "$st" 200 "a binary-mode redelivery answers 200"

# batch
cat >"$T_TMP/batch.json" <<'EOF'
[{"specversion":"1.0","id":"k-1","source":"/batch","type":"com.example.order.created","data":{"order_id":"K1"}},
 {"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.created","data":{"order_id":"A1"}},
 {"specversion":"0.3","id":"k-2","source":"/batch","type":"com.example.order.created"},
 {"specversion":"1.0","id":"k-3","source":"/batch","type":"com.example.nobody"},
 {"specversion":"1.0","id":"k-4","source":"/batch","type":"com.example.order.created","data":{"total":1}}]
EOF
t_is "$(code -H 'Content-Type: application/cloudevents-batch+json' --data-binary @"$T_TMP/batch.json")" 200 \
	"a batch answers 200"
t_is "$(body '[.results[].status] | map(tostring) | join(",")')" "202,200,400,404,400" "…with a status per event"
t_is "$(body '.results[1].run_id')" "$RUN1" "…a duplicate in a batch names the first run"
t_like "$(body '.results[2].detail')" specversion "…a bad event's detail names specversion"
t_like "$(body '.results[4].errors[0].pointer')" '^/?$|order_id' "…a contract failure carries its pointers"

# bad events
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"1.0","source":"/s","type":"com.example.order.created"}')" \
	400 "an event without id answers 400"
t_like "$(body .detail)" "^id is missing" "…naming id"
t_is "$(curl -s -o /dev/null -w '%{content_type}' -X POST -H "Content-Type: $CE" --data '{}' "$URL/v1/events")" \
	application/problem+json "…as problem+json"
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"2.0","id":"x","source":"/s","type":"t"}')" 400 \
	"specversion 2.0 answers 400"
t_like "$(body .detail)" 'specversion must be "1.0"' "…naming specversion"
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"1.0","id":"x","source":"","type":"t"}')" 400 \
	"an empty source answers 400"
t_like "$(body .detail)" "source must be a non-empty string" "…naming source"
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"1.0","id":"x","source":"/s"}')" 400 "no type answers 400"
t_like "$(body .detail)" "type is missing" "…naming type"
t_is "$(code -H "Content-Type: $CE" --data 'nope')" 400 "a body that is not JSON answers 400"
t_is "$(code -H 'Content-Type: application/json' --data '{"order_id":"X"}')" 400 "plain JSON without ce- headers answers 400"
t_like "$(body .detail)" "not a CloudEvent" "…saying it is not a CloudEvent"
t_is "$(code -H 'ce-specversion: 1.0' -H 'ce-id: z' -H 'ce-type: com.example.order.created' --data 'x')" 400 \
	"a binary event without ce-source answers 400"
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"1.0","id":"u","source":"/s","type":"com.example.none"}')" \
	404 "a type no workflow subscribes to answers 404"
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"1.0","id":"c","source":"/s","type":"com.example.order.created","data":{"total":"x"}}')" \
	400 "data that fails the subscriber's contract answers 400"
t_is "$(code -H "Content-Type: $CE" --data '{"specversion":"1.0","id":"n","source":"/s","type":"com.example.order.created","Bad-Name":1,"data":{"order_id":"N"}}')" \
	400 "an attribute name with capitals answers 400"

# the runs finish, and the emitted topic started its subscriber (one table)
for _ in $(seq 100); do
	[ "$(curl -s "$URL/v1/runs/$BRUN" | jq -r .status)" = completed ] && break
	sleep 0.05
done
t_is "$(curl -s "$URL/v1/runs/$BRUN" | jq -r .status)" completed "an event's run completes"
t_is "$(curl -s "$URL/v1/runs/$BRUN" | jq -r .input.order_id)" B1 "…with the event's data as input"
for _ in $(seq 100); do
	n=$(curl -s "$URL/v1/runs?workflow=on-seen" | jq '.runs | length')
	[ "$n" -ge 4 ] && break
	sleep 0.05
done
t_is "$n" 4 "each on-order run's emit started on-seen once (4 distinct events)"
t_is "$(curl -s "$URL/v1/runs?workflow=on-order" | jq '.runs | length')" 4 "on-order ran once per distinct event"
t_like "$(curl -s "$URL/v1/audit?action=run.start" | jq -c '[.entries[]?.detail.cloudevent.id] | unique')" '"o-1"' \
	"the run.start audit entry records the event's attributes"

t_is "$(jq -s 'length' "$T_TMP/sink.jsonl")" 4 "the sink received each emitted event once (after a 503)"
t_is "$(jq -rs '[.[].content_type] | unique | join(",")' "$T_TMP/sink.jsonl")" application/cloudevents+json \
	"…as structured CloudEvents"
t_is "$(jq -rs '[.[] | select(.body.specversion == "1.0" and .body.type == "com.example.order.seen" and
	.body.source == "sluice/on-order" and .body.id == .key)] | length' "$T_TMP/sink.jsonl")" 4 \
	"…with type, source, and the Idempotency-Key as id"
t_is "$(jq -rs '[.[].body.data.order_id] | sort | join(",")' "$T_TMP/sink.jsonl")" "A1,A1,B1,K1" "…carrying the payload as data"

m=$(curl -s "$URL/metrics")
t_like "$m" 'sluice_events_accepted_total\{type="com.example.order.created"\} 4' "accepted events are counted by type"
t_like "$m" 'sluice_duplicates_skipped_total\{trigger="event"\} 3' "duplicates are counted"
t_like "$m" 'sluice_events_rejected_total\{reason="invalid"\} [1-9]' "invalid events are counted"
t_like "$m" 'sluice_events_rejected_total\{reason="unrouted"\} 2' "unrouted events are counted"
t_done
