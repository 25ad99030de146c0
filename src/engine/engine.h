/*
 * engine: durable runs (DESIGN.md §3).
 *
 * Worker threads claim tasks from the store, execute one step of each run
 * they hold, and commit the results of all of them in one transaction (a
 * group commit: one fsync for a batch). A run whose next step is due at once
 * stays with its worker (its lease is extended by the commit), so a 5-step
 * run costs 1 claim and 5 grouped commits, not 10 transactions.
 *
 * Promises: a step's result is committed before the next step starts, so a
 * completed step is never re-run after a crash; an interrupted one is re-run
 * (at-least-once) with the same idempotency key; a commit under a lost lease
 * is refused by the store's fencing token; a run finishes on the workflow
 * version (definition digest) it started with.
 */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "gov/audit.h"
#include "store/store.h"
#include "util/util.h"

struct sl_engine;

struct sl_engine_opts {
	int workers;      /* threads; 0: the project's settings (default 2) */
	int batch;        /* tasks a worker holds and commits together; 0: settings */
	int64_t lease_ms; /* 0: settings (default 30 s) */
	const char *owner; /* lease owner prefix for logs; NULL: "host:pid" */
	bool triggers;     /* run the schedules (serve, worker; not `sluice run`) */
	/* follow the autonomy signals a server evaluates, through the store
	 * (`sluice worker`: it runs no evaluator of its own) */
	bool mirror_signals;
};

/* Borrows p and s: both must outlive the engine. */
int sl_engine_new(struct sl_project *p, struct sl_store *s, const struct sl_engine_opts *o,
		  struct sl_engine **out, struct sl_err *err);
/* Starts the worker threads. */
int sl_engine_start(struct sl_engine *e, struct sl_err *err);
/* Stops taking work, finishes the steps in hand (their results are
 * committed), releases leases and joins the threads. Idempotent. */
void sl_engine_stop(struct sl_engine *e);
void sl_engine_free(struct sl_engine *e);

struct sl_start {
	const char *workflow;
	const json_t *input;        /* borrowed; NULL: {} */
	const char *idem_scope;     /* NULL: "api" */
	const char *idem_key;       /* NULL: none */
	/* how long idem_key is remembered: 0 the project's idempotency_ttl
	 * (30 days by default), -1 for ever (a key that must hold whatever its
	 * age: schedule slots, synced record versions) */
	int64_t idem_ttl_ms;
	const char *correlation_id; /* NULL: new */
	const char *trigger;        /* "cli", "api", ... */
	const char *tenant;         /* NULL: "default" */
	int priority;
	struct sl_audit_actor actor; /* who starts it (the run.start audit entry); zeroed: the system */
	const char *role;           /* the caller's role (an API key's), NULL: none; policy subject role:R */
	/* borrowed, may be NULL: members added to the run.start audit detail
	 * (a CloudEvent's attributes, a schedule's slot, a synced record) */
	const json_t *audit_detail;
};
/* Validates the input against the workflow's contract (a failure is
 * SL_EINVAL with class contract and every error's JSON pointer in the
 * message), then creates the run durably, with its run.start audit entry
 * in the same transaction. Returns once it is committed. */
int sl_engine_start_run(struct sl_engine *e, const struct sl_start *st, char run_id[SL_ID_MAX],
			bool *existed, struct sl_err *err);

/* Starts the consumers of every current workflow whose trigger is a
 * stream (DESIGN.md §2): trigger.consumers threads each, one member of the
 * consumer group apiece. Each message starts a run whose idempotency key is
 * the workflow and the message's identity, and is acknowledged only after
 * the run is committed; a redelivery finds the first run (a duplicate,
 * acknowledged, no second run). A message that can never start a run
 * (contract) is acknowledged and counted as rejected. A consumer holds at
 * most one fetched batch, so a slow store slows the reading (backpressure).
 * Call after sl_engine_start; sl_engine_stop stops them first. */
int sl_engine_streams_start(struct sl_engine *e, struct sl_err *err);
void sl_engine_streams_stop(struct sl_engine *e);

/* The run idempotency key of a stream message: "WORKFLOW|IDENTITY". Owned. */
char *sl_engine_stream_key(const char *workflow, const char *identity);

/* Replays a dead run from its failed step (DLQ entry dlq_id): completed
 * steps are not repeated. input (borrowed, may be NULL) replaces .input;
 * newest = true moves the run onto the newest loaded version of its
 * workflow, else it stays on its own. Wakes the workers. actor (may be
 * NULL: the system) is recorded in a dlq.replay audit entry. */
int sl_engine_replay(struct sl_engine *e, const char *dlq_id, const json_t *input, bool newest,
		     const struct sl_audit_actor *actor, char run_id[SL_ID_MAX], struct sl_err *err);
/* Cancels a run that has not ended (SL_EINVAL when it has), recording a
 * run.cancel audit entry with actor (may be NULL: the system). */
int sl_engine_cancel(struct sl_engine *e, const char *run_id, const struct sl_audit_actor *actor,
		     struct sl_err *err);
/* Kill switches: pauses (paused = true) or resumes kind ("workflow",
 * "connector", "provider") name, with a pause or resume audit entry (actor
 * may be NULL: the system; tenant NULL: "default") in the same transaction.
 * Takes effect at once here (the cached set is reloaded and, on resume, the
 * parked runs woken); other processes see it within PAUSE_REFRESH_MS (250
 * ms) and a PostgreSQL NOTIFY. *changed (may be NULL): whether it changed. */
int sl_engine_pause(struct sl_engine *e, const char *kind, const char *name, bool paused,
		    const struct sl_audit_actor *actor, const char *tenant, bool *changed, struct sl_err *err);
/* A person decides a pending approval (DESIGN.md §7): decision is
 * "approve", "reject" or "edit"; reason is required for reject and edit;
 * value (borrowed) is the edited value, checked BEFORE the decision is
 * taken against what the step's output must meet (its contract:, an
 * extract's contract, a classify step's labels; a classify edit may be
 * the bare label "bug"): an invalid edit is SL_EINVAL class contract and
 * nothing changes. The decision, the run queued again at the same step and
 * an approval.decide audit entry land in one transaction; SL_EEXISTS when
 * it was already decided, SL_ENOTFOUND. *out (may be NULL) gets the
 * approval's document. Wakes the workers. */
int sl_engine_approval_decide(struct sl_engine *e, const char *approval_id, const char *decision,
			      const char *reason, const json_t *value, const struct sl_audit_actor *actor, json_t **out,
			      struct sl_err *err);
/* Whether a kill switch holds a run (a document of sl_store_run_get): its
 * workflow, or the connector or provider its next step would call; key
 * gets "KIND:NAME". Judged against the newest loaded version of its
 * workflow (for the API's run document). */
bool sl_engine_run_held(struct sl_engine *e, const json_t *run_doc, char *key, size_t n);
/* Whether a kill switch holds a model call through route (a paused
 * provider of one of its models): key gets "provider:NAME". From the
 * engine's cached set (at most PAUSE_REFRESH_MS old). */
bool sl_engine_route_paused(struct sl_engine *e, const char *route, char *key, size_t n);
/* The project and store the engine runs on (borrowed). */
struct sl_project *sl_engine_project(struct sl_engine *e);
struct sl_store *sl_engine_store(struct sl_engine *e);

/* Waits until the run and every run it spawned are terminal, or timeout_ms
 * passes (0: forever). Returns 0, or SL_ETIMEOUT. */
int sl_engine_wait_tree(struct sl_engine *e, const char *root_run_id, int64_t timeout_ms);

/* ---- polling syncs (trigger {poll}) ---- */
struct sl_sync_progress {
	int64_t pages, records; /* read from the source */
	int64_t started;        /* runs started: new or changed records (deletes included) */
	int64_t deletes;        /* of those, deletions */
	int64_t duplicates;     /* records already synced (same id and version): nothing started */
	int64_t errors;         /* records skipped: no id, or refused by the workflow's contract */
	int64_t retries;        /* pages asked again after a transient failure (429, 5xx) */
};
typedef void (*sl_sync_progress_fn)(const struct sl_sync_progress *p, void *ud);
/* Walks a poll workflow's source once from since (RFC 3339; NULL: from the
 * beginning), starting a run per record not synced before (same
 * idempotency keys as the poller: nothing is doubled), calling fn (may be
 * NULL) after each page. Leaves the stored high-water mark alone. The
 * engine need not be started: the runs wait in the store for workers. */
int sl_engine_backfill(struct sl_engine *e, const char *workflow, const char *since, sl_sync_progress_fn fn,
		       void *ud, struct sl_sync_progress *out, struct sl_err *err);

/* Counters since start (for benchmarks and, later, metrics). */
struct sl_engine_stats {
	uint64_t steps;     /* step executions committed */
	uint64_t commits;   /* store transactions */
	uint64_t fenced;    /* commits refused for a stale lease */
	uint64_t claims;
	uint64_t runs_done; /* runs that reached a terminal status here */
};
void sl_engine_stats(struct sl_engine *e, struct sl_engine_stats *out);

/* Full-jitter exponential backoff (AWS architecture blog's "full jitter"):
 * uniform in [0, min(max_ms, base_ms * 2^(attempt-1))], and never less than
 * retry_after_ms when the peer asked for a delay (-1: none). attempt is the
 * 1-based number of the attempt that failed. */
int64_t sl_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, int64_t retry_after_ms);

#endif
