/*
 * obs: observability shared by every layer (DESIGN.md §8). Today: the
 * process's metrics, exposed by the server as `GET /metrics` in the
 * Prometheus text format (version 0.0.4).
 *
 * Every metric family is declared once, in SL_METRICS below: its name
 * (Prometheus conventions: base units in the name, counters end in
 * _total), type, help and label names. Code records with the family's enum
 * and the label values in order. A family keeps at most SL_METRIC_SERIES_MAX
 * label sets; past it new ones are counted under the value "_other", so a
 * bad label (a run id, say) cannot grow memory without bound.
 *
 * Values that are cheaper to read than to track (queue depth, DLQ size,
 * budgets left) are gauges filled at scrape time by collectors.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef SL_OBS_H
#define SL_OBS_H

#include <jansson.h>
#include <stddef.h>

#include "util/util.h"

#define SL_METRIC_LABELS_MAX 4
#define SL_METRIC_SERIES_MAX 2000

/* X(ENUM, type, name, help, labels: comma-separated, "" for none) */
#define SL_METRICS(X)                                                                                              \
	X(HTTP_REQUESTS, COUNTER, "sluice_http_requests_total", "HTTP requests answered, by route and status",        \
	  "method,route,code")                                                                                     \
	X(HTTP_DURATION, HISTOGRAM, "sluice_http_request_duration_seconds",                                         \
	  "Time from a request's headers to its answer, by route", "route")                                        \
	X(WEBHOOK_ACCEPT, HISTOGRAM, "sluice_webhook_accept_duration_seconds",                                      \
	  "Time from a webhook's arrival to its durable 202 (the run committed), by workflow", "workflow")        \
	X(WEBHOOK_REJECTED, COUNTER, "sluice_webhooks_rejected_total",                                              \
	  "Webhooks refused, by workflow and reason (signature, contract, ...)", "workflow,reason")                \
	X(RUNS_STARTED, COUNTER, "sluice_runs_started_total", "Runs created, by workflow and trigger",               \
	  "workflow,trigger")                                                                                      \
	X(RUNS_FINISHED, COUNTER, "sluice_runs_finished_total",                                                     \
	  "Runs that reached an end state (or review), by workflow, version and outcome",                          \
	  "workflow,version,outcome")                                                                              \
	X(STEP_DURATION, HISTOGRAM, "sluice_step_duration_seconds", "Time of one step attempt, by workflow and kind", \
	  "workflow,kind")                                                                                         \
	X(STEP_FAILURES, COUNTER, "sluice_step_failures_total",                                                     \
	  "Step attempts that failed, by workflow and error class (each retry starts with one)",                   \
	  "workflow,error_class")                                                                                  \
	X(DEAD_LETTERS, COUNTER, "sluice_dead_letters_total", "Runs sent to the dead-letter queue, by workflow",     \
	  "workflow")                                                                                              \
	X(AI_CALLS, COUNTER, "sluice_ai_calls_total",                                                               \
	  "Model calls and cache hits, by route, model and outcome (ok, low_confidence, invalid, error, skipped)",  \
	  "route,model,outcome")                                                                                   \
	X(AI_TOKENS, COUNTER, "sluice_ai_tokens_total", "Tokens sent and received, by route, model and direction",  \
	  "route,model,direction")                                                                                 \
	X(AI_COST, COUNTER, "sluice_ai_cost_usd_total", "What model calls cost, by route and model (price table)",   \
	  "route,model")                                                                                           \
	X(AI_CACHE_HITS, COUNTER, "sluice_ai_cache_hits_total", "Answers served from a route's cache", "route")     \
	X(AI_DURATION, HISTOGRAM, "sluice_ai_call_duration_seconds", "Time of one model call, by route and model",   \
	  "route,model")                                                                                           \
	X(AI_OUTCOMES, COUNTER, "sluice_ai_task_outcomes_total",                                                    \
	  "AI tasks by route and outcome: accepted, review (invalid twice or not confident), failed",             \
	  "route,outcome")                                                                                         \
	X(AI_BUDGET_LEFT, GAUGE, "sluice_ai_budget_remaining_usd",                                                  \
	  "What is left of a budget in its current period", "scope,name")                                          \
	X(RUNS_BY_STATUS, GAUGE, "sluice_runs", "Runs in the store, by status (queued is the queue depth)", "status") \
	X(DLQ_SIZE, GAUGE, "sluice_dlq_entries", "Dead-letter entries not yet replayed", "")                         \
	X(LEASES_HELD, GAUGE, "sluice_leases_held", "Run tasks leased by a worker now", "")                          \
	X(HTTP_INFLIGHT, GAUGE, "sluice_http_requests_in_flight", "Requests being handled now", "")               \
	X(CONNECTOR_UP, GAUGE, "sluice_connector_up",                                                              \
	  "1 when a connector is healthy or degraded, 0 when unhealthy (an auth error since its last success)",    \
	  "connector")                                                                                             \
	X(CONNECTOR_SUCCESS_AGE, GAUGE, "sluice_connector_last_success_age_seconds",                               \
	  "Seconds since a connector's last successful call (absent when it never succeeded)", "connector")        \
	X(CONNECTOR_CALLS, COUNTER, "sluice_connector_calls_total", "Calls made through a connector", "connector") \
	X(AI_DRIFT_PSI, GAUGE, "sluice_ai_drift_psi",                                                             \
	  "Population stability index of an ai step's recent outputs against its baseline, by signal",            \
	  "workflow,step,signal")                                                                                  \
	X(AI_DRIFTED, GAUGE, "sluice_ai_drifted", "1 while an ai step's outputs have drifted past the threshold",   \
	  "workflow,step")                                                                                         \
	X(SLO_BURN, GAUGE, "sluice_slo_burn_rate",                                                               \
	  "How fast a workflow spends an objective's error budget (1: exactly over 30 days), by window",          \
	  "workflow,objective,window")                                                                             \
	X(SLO_ALERT, GAUGE, "sluice_slo_alert", "1 while an objective burns fast (1h and 5m >= 14.4) or slowly "    \
	  "(6h and 30m >= 6)", "workflow,objective")                                                               \
	X(SLO_BREACHES, COUNTER, "sluice_slo_breaches_total", "Times an objective started burning", "workflow,objective") \
	X(OTLP_SPANS, COUNTER, "sluice_otlp_spans_exported_total", "Spans sent to the OTLP endpoint", "")          \
	X(OTLP_DROPPED, COUNTER, "sluice_otlp_spans_dropped_total",                                                \
	  "Spans not exported because the OTLP endpoint failed or timed out", "")                                  \
	X(OTLP_DROPPED_RUNS, COUNTER, "sluice_otlp_runs_dropped_total",                                            \
	  "Ended runs whose spans were not queued because the export queue was full", "")                         \
	X(CONNECTOR_ERRORS, COUNTER, "sluice_connector_errors_total",                                              \
	  "Failed calls through a connector, by the class of the last error", "connector")                         \
	X(APPROVALS_CREATED, COUNTER, "sluice_approvals_created_total",                                           \
	  "Runs parked on a decision, by workflow and kind (review, approval, policy, autonomy)", "workflow,kind")  \
	X(APPROVALS_DECIDED, COUNTER, "sluice_approvals_decided_total",                                           \
	  "Decisions read back by the waiting step, by kind and decision (approved, edited, rejected, expired)",   \
	  "kind,decision")                                                                                         \
	X(APPROVAL_WAIT, HISTOGRAM, "sluice_approval_wait_seconds",                                               \
	  "Time from an approval's creation to its decision, by kind", "kind")                                    \
	X(APPROVAL_ESCALATIONS, COUNTER, "sluice_approval_escalations_total",                                     \
	  "Approvals whose timeout moved them to the escalation group, by kind", "kind")                          \
	X(AI_REVIEWS, COUNTER, "sluice_ai_review_decisions_total",                                                \
	  "Reviews of AI answers by decision: accepted (approved), edited, rejected (or expired)", "workflow,decision")\
	X(EVENTS_ACCEPTED, COUNTER, "sluice_events_accepted_total",                                                \
	  "CloudEvents that started runs, by type (a type no workflow subscribes to is refused, not counted)",     \
	  "type")                                                                                                  \
	X(EVENTS_REJECTED, COUNTER, "sluice_events_rejected_total",                                                \
	  "CloudEvents refused, by reason (invalid, unrouted, contract)", "reason")                                 \
	X(DUPLICATES_SKIPPED, COUNTER, "sluice_duplicates_skipped_total",                                          \
	  "Starts that found their idempotency key already used (no second run), by trigger", "trigger")          \
	X(SCHEDULE_FIRES, COUNTER, "sluice_schedule_fires_total", "Schedule slots that started a run, by workflow",  \
	  "workflow")                                                                                              \
	X(SCHEDULE_MISSES, COUNTER, "sluice_schedule_misses_total",                                                \
	  "Schedule slots passed over by the catch-up policy after a downtime, by workflow", "workflow")       \
	X(SYNC_RECORDS, COUNTER, "sluice_sync_records_total",                                                      \
	  "Records a polling sync started runs for, by workflow and op (upsert, delete)", "workflow,op")           \
	X(SYNC_LAG, GAUGE, "sluice_sync_lag_seconds",                                                             \
	  "Seconds since the start of a polling sync's last complete pass (what it has is at least this fresh)",   \
	  "workflow")\
	X(STREAM_LAG, GAUGE, "sluice_stream_consumer_lag",                                                         \
	  "Messages of a stream's consumer group not yet acknowledged (undelivered plus pending)", "connector,group") \
	X(STREAM_CONSUMED, COUNTER, "sluice_stream_events_consumed_total",                                         \
	  "Stream messages that started a run (committed, then acknowledged)", "connector")                       \
	X(STREAM_REDELIVERIES, COUNTER, "sluice_stream_redeliveries_total",                                        \
	  "Stream messages delivered again (reclaimed or redelivered by the broker)", "connector")                 \
	X(STREAM_DUPLICATES, COUNTER, "sluice_stream_duplicates_skipped_total",                                    \
	  "Stream messages whose run already existed (a redelivery after a crash): acknowledged, no second run",  \
	  "connector")                                                                                             \
	X(STREAM_REJECTED, COUNTER, "sluice_stream_events_rejected_total",                                         \
	  "Stream messages acknowledged without a run because they can never start one, by reason", "connector,reason") \
	X(POLICY_DECISIONS, COUNTER, "sluice_policy_decisions_total",                                              \
	  "Policy and autonomy decisions before effects, by decision and deciding rule", "decision,rule")          \
	X(AUTONOMY_DEMOTED, GAUGE, "sluice_ai_autonomy_demoted",                                                   \
	  "1 while an ai step acts one autonomy level lower because a demote_on signal holds", "workflow,step")

enum sl_metric {
#define SL_METRIC_ENUM(e, type, name, help, labels) SL_M_##e,
	SL_METRICS(SL_METRIC_ENUM)
#undef SL_METRIC_ENUM
	SL_M__COUNT
};

/* Adds v (>= 0) to a counter, or sets a gauge to v (or a counter, when a
 * collector copies a count kept elsewhere). labels holds the family's label
 * values in order (NULL or "" is rendered as ""). */
void sl_metric_add(enum sl_metric m, const char *const *labels, double v);
void sl_metric_set(enum sl_metric m, const char *const *labels, double v);
/* Records one observation (seconds for the *_seconds families). */
void sl_metric_observe(enum sl_metric m, const char *const *labels, double v);
/* Forgets a gauge family's series (a collector does this before refilling
 * it, so a status that vanished does not linger). */
void sl_metric_clear(enum sl_metric m);

/* A collector fills gauges just before a scrape. Registered once per
 * (fn, ud); removed with sl_metrics_collector_remove before ud dies. */
typedef void (*sl_metrics_collect_fn)(void *ud);
void sl_metrics_collector_add(sl_metrics_collect_fn fn, void *ud);
void sl_metrics_collector_remove(sl_metrics_collect_fn fn, void *ud);

/* Runs the collectors and renders every family with at least one series
 * (families without labels always) in the text format. Returns owned text. */
char *sl_metrics_render(void);

/* Forgets every series (tests). */
void sl_metrics_reset(void);

/* ---- traces ------------------------------------------------------------------------ */
/* A run's span tree (run > step > attempt > model call) as an OTLP/JSON
 * ExportTraceServiceRequest, derived from the run document of
 * sl_store_run_get (borrowed). Returns owned, or NULL when run has no id. */
json_t *sl_trace_from_run(const json_t *run);

/* ---- drift ----------------------------------------------------------------------------- */
/* Compares an ai step's recent outputs with a baseline (arrays of step
 * outputs: {label, confidence} or {text}) by population stability index on
 * labels, confidence and length. Returns owned {psi: {label, confidence,
 * length} (null when not measurable), threshold, drifted, signal (the worst
 * past the threshold), recent, baseline}. Fewer than min_n outputs in
 * either window: never drifted. */
json_t *sl_drift_compare(const json_t *recent, const json_t *baseline, double threshold, size_t min_n);

/* The OTLP/HTTP exporter (`otlp_endpoint:` in sluice.yaml): when a run
 * ends, its span tree goes to ENDPOINT/v1/traces (OTLP/JSON), batched by
 * one background thread. load returns the run document (owned) or NULL.
 * The queue holds queue_max runs (0: 4096); past it runs are dropped and
 * counted (sluice_otlp_runs_dropped_total), so a slow collector never
 * slows a run. sl_otlp_stop sends what is queued, then frees. */
struct sl_otlp;
typedef json_t *(*sl_otlp_load_fn)(void *ud, const char *run_id);
struct sl_otlp *sl_otlp_start(const char *endpoint, size_t queue_max, sl_otlp_load_fn load, void *ud);
void sl_otlp_run_ended(struct sl_otlp *x, const char *run_id);
void sl_otlp_stop(struct sl_otlp *x);

#endif
