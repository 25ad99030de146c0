/*
 * store: the durable state of runs, steps, the task queue, timers, the
 * dead-letter queue and idempotency records (DESIGN.md §3, §4).
 *
 * One interface; sqlite.c (WAL, the embedded default) and postgres.c (any
 * number of processes on one database) implement it. Nothing above this
 * header knows which store it has.
 *
 * The queue holds one task per unfinished run: "advance this run". A task
 * due in the future is a timer (retry backoff, wait steps). Workers claim
 * due tasks with a lease; every claim bumps the task's fencing token, and a
 * commit names the token it holds: a commit under a stale token is refused
 * (SL_EFENCED) and changes nothing. An expired lease is claimable again.
 *
 * Every function is thread-safe and may be called from any thread.
 * Times are ms since the epoch (sl_now_ms()).
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct sl_store;

enum sl_run_status {
	SL_RUN_QUEUED,       /* accepted, no step done yet */
	SL_RUN_RUNNING,      /* at least one step done */
	SL_RUN_WAITING,      /* a wait step or a retry backoff is pending */
	SL_RUN_COMPLETED,    /* terminal */
	SL_RUN_DEAD,         /* terminal: in the DLQ (can be replayed) */
	SL_RUN_CANCELLED,    /* terminal */
	SL_RUN_COMPENSATING, /* running compensations */
	SL_RUN_COMPENSATED,  /* terminal: failed, completed steps were compensated */
	SL_RUN_REVIEW,       /* parked: an ai step's answer waits for a person (no task) */
	SL_RUN__COUNT
};
const char *sl_run_status_name(enum sl_run_status s);
int sl_run_status_parse(const char *name); /* -1 when unknown */
bool sl_run_status_terminal(enum sl_run_status s);

enum sl_step_status {
	SL_STEP_ST_COMPLETED,
	SL_STEP_ST_SKIPPED,     /* `when` was false */
	SL_STEP_ST_FAILED,      /* on_error: continue; the error is the output */
	SL_STEP_ST_WAITING,     /* a wait step that has not woken yet */
	SL_STEP_ST_DEAD,        /* the step that sent the run to the DLQ */
	SL_STEP_ST_COMPENSATED, /* completed, then compensated */
	SL_STEP_ST_REVIEW,      /* an ai step's answer waits for a person; the output is the proposal */
	SL_STEP_ST__COUNT
};
const char *sl_step_status_name(enum sl_step_status s);

enum sl_phase { SL_PHASE_FORWARD, SL_PHASE_COMPENSATE };

/* Opens "sqlite:PATH", "sqlite::memory:" or a bare PATH (creates the file
 * and its folder, sets WAL), or "postgres://..." / "postgresql://..." (a
 * libpq URL); applies migrations. Returns owned. Error messages never
 * hold a URL's password. */
int sl_store_open(const char *url, struct sl_store **out, struct sl_err *err);
void sl_store_close(struct sl_store *s);
const char *sl_store_kind(const struct sl_store *s); /* "sqlite", "postgres" */
int sl_store_schema_version(struct sl_store *s);

/* ---- workflow definitions (a run finishes on the version it started with) --- */
/* Records a definition once per digest (no-op when known). */
int sl_store_def_put(struct sl_store *s, const char *digest, const char *name, int version, const char *file,
		     const char *source, struct sl_err *err);
/* Returns the stored source (owned) and file (owned) of a digest. */
int sl_store_def_get(struct sl_store *s, const char *digest, char **file, char **source, struct sl_err *err);

/* ---- creating runs ----------------------------------------------------------- */
struct sl_run_new {
	const char *workflow;
	int version;
	const char *digest;          /* the definition's digest (sl_store_def_put first) */
	const json_t *input;         /* borrowed */
	const char *correlation_id;  /* NULL: a new one */
	const char *parent_run_id;   /* NULL for a root run */
	const char *root_run_id;     /* NULL: the run itself */
	const char *trigger;         /* "cli", "api", "webhook", "emit:TOPIC", ... */
	const char *tenant;          /* NULL: "default" */
	int priority;                /* higher first; default 0 */
	const char *idem_scope;      /* with idem_key: a repeat returns the first run */
	const char *idem_key;
	int64_t idem_ttl_ms;         /* 0: forever */
	int64_t due_at;              /* 0: now */
	/* an audit entry (run.start, see src/gov/audit.h) appended in the same
	 * transaction when the run is created (not when idem_key finds an
	 * earlier one); the store fills its run_id. Borrowed, may be NULL. */
	const json_t *audit;
};
/* Creates the run and its first task in one transaction. When idem_key was
 * seen in idem_scope, creates nothing and returns the first run's id with
 * *existed = true. run_id_out receives the id. Concurrent calls share one
 * transaction (group commit): each still returns only once its run is
 * durable, and one that fails does not fail the others. */
int sl_store_run_create(struct sl_store *s, const struct sl_run_new *r, char run_id_out[SL_ID_MAX],
			bool *existed, struct sl_err *err);

/* Counters since open: runs created through sl_store_run_create and the
 * transactions they took (creates / create_batches is the mean batch). */
struct sl_store_stats {
	uint64_t creates, create_batches;
};
void sl_store_stats(struct sl_store *s, struct sl_store_stats *out);

/* ---- claiming --------------------------------------------------------------- */
struct sl_task {
	char run_id[SL_ID_MAX];
	int64_t fence;      /* the fencing token this claim holds */
	int64_t lease_until;
};
/* Claims up to max due tasks (due_at <= now, lease free or expired) for
 * owner, with a lease of lease_ms. Fair across tenants (see
 * sl_store_set_tenants): the batch is shared among the tenants that have
 * due work by weighted fair queueing, so one tenant's backlog cannot starve
 * another's new run; within one tenant, higher priority first, then oldest
 * due. A tenant at its max_concurrency gets nothing. */
int sl_store_claim(struct sl_store *s, const char *owner, int64_t lease_ms, size_t max, struct sl_task *out,
		   size_t *n, struct sl_err *err);
/* The runtime share of a tenant (sluice.yaml `tenants:`), for claims.
 * weight: its share relative to others (> 0; unlisted tenants: 1);
 * max_concurrency: at most this many of its runs leased at once, across
 * every process on the store (0: no limit). */
struct sl_tenant_share {
	const char *tenant;
	double weight;
	int max_concurrency;
};
/* Sets the shares claims follow (copied; replaces the previous set). Call
 * before claiming starts, not concurrently with sl_store_claim. Every
 * process on one database should be given the same set. */
int sl_store_set_tenants(struct sl_store *s, const struct sl_tenant_share *t, size_t n, struct sl_err *err);
/* Extends leases (long calls). A task whose fence moved on is reported in
 * lost[i] = true. */
int sl_store_renew(struct sl_store *s, struct sl_task *tasks, size_t n, int64_t lease_ms, bool *lost,
		   struct sl_err *err);
/* Gives leases back (graceful stop): the tasks become claimable at once by
 * anyone; a task whose fence moved on is left alone. */
int sl_store_release(struct sl_store *s, const struct sl_task *tasks, size_t n, struct sl_err *err);
/* The owners of live leases ({"owner": count, ...}), so a starting process
 * can find leases left by a dead one. */
int sl_store_lease_owners(struct sl_store *s, json_t **out, struct sl_err *err);
/* Releases every live lease of owner (a process known to be dead): its tasks
 * are claimable at once; their fences move on when claimed, so a late commit
 * from the dead owner is still refused. *released: how many. */
int sl_store_release_owner(struct sl_store *s, const char *owner, int64_t *released, struct sl_err *err);
/* When the next task is due (for a sleeping worker), or INT64_MAX if none.
 * A leased task counts as due when its lease ends. On a store error: now
 * (so the worker's claim runs and reports it). */
int64_t sl_store_next_due(struct sl_store *s);

/* Waits until new work may be due, at most timeout_ms: returns 1 when
 * another process (or thread) made work due (PostgreSQL: a NOTIFY on
 * sluice_work, sent by run creation, reschedules, releases and replays),
 * 0 on timeout. A store without notifications (SQLite: one process, whose
 * engine wakes itself) sleeps the timeout and returns 0; so does a failed
 * listen (the caller's polling goes on). Call from one thread. */
int sl_store_wait(struct sl_store *s, int64_t timeout_ms);
/* Whether the wait above can wake early (false: it only sleeps). */
bool sl_store_can_wait(const struct sl_store *s);
/* Tries to hold the singleton `name` (timers, schedulers, pollers) for this
 * process: *held = true when this process holds it (now or already).
 * PostgreSQL: a session advisory lock on a dedicated connection, released
 * by the server when the process dies, so another process's next try takes
 * it over; call again periodically (a lost connection loses the lock, and
 * *held says so). SQLite: always held. */
int sl_store_try_singleton(struct sl_store *s, const char *name, bool *held);

/* ---- a run's state, as the engine needs it to go on ---------------------------- */
struct sl_run {
	char id[SL_ID_MAX];
	char *workflow;
	int version;
	char *digest;
	enum sl_run_status status;
	enum sl_phase phase;
	int cursor;       /* forward: index of the next step; compensate: of the next step to undo */
	int attempt;      /* attempts already made of the step at cursor */
	int64_t wake_at;  /* a wait step's wake time, 0 when none */
	json_t *input;    /* owned */
	json_t *context;  /* {"input": ..., "<step id>": output, ...}: owned */
	json_t *step_status; /* {"<step id>": "completed" | "skipped" | ...}: owned */
	json_t *output;   /* owned, json null until completed */
	json_t *error;    /* owned, json null or {class, message, step} */
	char *correlation_id;
	char *parent_run_id; /* NULL for a root run */
	char *root_run_id;
	char *trigger;
	char *tenant;
	int priority;
	int64_t created_at, updated_at, finished_at;
};
int sl_store_run_load(struct sl_store *s, const char *run_id, struct sl_run *out, struct sl_err *err);
void sl_run_free(struct sl_run *r); /* frees the members, not r */

/* ---- committing a step ---------------------------------------------------------- */
struct sl_step_rec {
	const char *step_id;
	int index;
	enum sl_step_status status;
	const json_t *output;   /* borrowed; NULL: null */
	const json_t *error;    /* borrowed; NULL: null */
	int attempts;           /* attempts made so far */
	int64_t started_at, finished_at;
};
struct sl_attempt_rec {
	const char *step_id;    /* "update", or "update#compensate" for compensations */
	int attempt;            /* 1-based */
	int64_t started_at;
	int64_t duration_ms;
	const char *outcome;    /* "ok", "error", "skipped", "waiting" */
	enum sl_class error_class;
	const char *error;      /* message, NULL when ok */
};
enum sl_task_next {
	SL_TASK_CONTINUE,   /* due now; the lease is kept and extended (run affinity) */
	SL_TASK_RESCHEDULE, /* due at due_at; the lease is released */
	SL_TASK_DONE,       /* the run ended: the task is deleted */
};
struct sl_dlq_new {
	const char *step_id;
	enum sl_class error_class;
	const char *error;      /* message */
	const json_t *evidence; /* borrowed: the step's input, the last response, ... */
};
/* An approval created with the commit that parks its run (kind "review":
 * an ai step's answer; "approval": an approval step; "policy", "autonomy":
 * a call gated by a rule or by an AI step's autonomy level). The store
 * takes tenant and workflow from the run. */
struct sl_approval_new {
	const char *id;            /* "apr_" + ULID, made by the caller (logs name it) */
	const char *step_id;
	const char *kind;
	const json_t *reviewers;   /* array of principals ("alice") and roles ("role:operator") */
	const json_t *escalate_to; /* array, or NULL: no escalation group */
	int64_t due_at;            /* 0: no timeout */
	int64_t timeout_ms;        /* the escalation's new due_at is now + this */
	const char *on_timeout;    /* "escalate", "reject", "approve"; NULL when no timeout */
	const json_t *input;       /* what the step read (the export's input); NULL: null */
	const json_t *evidence;    /* {source, proposed_action, rationale, confidence, policy, ...} */
	const json_t *proposed;    /* the value the decision approves or edits */
	const char *reason;        /* why it waits ("low confidence", ...) */
};
/* A change the engine makes to a pending approval in a commit (a timeout):
 * status "pending" with reviewers and due_at is an escalation; another
 * status is a decision (decision holds {decision, final, by, reason, at}).
 * The commit fails (SL_EFENCED) when the approval is no longer pending. */
struct sl_approval_set {
	const char *id;
	const char *status;        /* "pending", "approved", "rejected", "expired" */
	const json_t *decision;    /* NULL for an escalation */
	const json_t *reviewers;   /* escalation: the new group */
	int64_t due_at;            /* escalation: the new timeout */
};

struct sl_commit {
	const char *run_id;
	int64_t fence;
	int64_t lease_ms;             /* for SL_TASK_CONTINUE */
	const struct sl_step_rec *step;       /* may be NULL */
	const struct sl_attempt_rec *attempt; /* may be NULL */
	/* the run's new position and status */
	enum sl_run_status status;
	enum sl_phase phase;
	int cursor;
	int attempt_no;               /* the run's attempt counter for the step at cursor */
	int64_t wake_at;
	const json_t *output;         /* set when the run completes; else NULL */
	const json_t *error;          /* set when the run fails; else NULL */
	enum sl_task_next next;
	int64_t due_at;               /* for SL_TASK_RESCHEDULE */
	const struct sl_dlq_new *dlq; /* may be NULL */
	const struct sl_run_new *spawn; /* runs to create (emit), may be NULL */
	size_t nspawn;
	/* model calls of an ai step (array of records, see sl_ai_result.calls),
	 * kept with the step that made them; may be NULL */
	const json_t *ai_calls;
	const char *ai_step_id;
	/* audit entries (an array of objects, see sl_store_audit_append) that
	 * describe this commit, appended in its transaction: they land, or
	 * roll back, with it. May be NULL. */
	const json_t *audit;
	/* approvals (see sl_approval_new): created parked, changed by a
	 * timeout, or consumed (the step read the decision: run_load no longer
	 * shows it in context._approvals). Each may be NULL. */
	const struct sl_approval_new *approval;
	const struct sl_approval_set *approval_set;
	const char *approval_consumed;
};
/* Applies the commits in ONE transaction (group commit: one fsync for all),
 * each in its own savepoint: a commit whose fence is stale is skipped
 * (results[i] = SL_EFENCED) and the others still land. results[i] = 0 for
 * each that landed. A commit that is malformed or fails on its own gets its
 * own code (SL_EINVAL, SL_ESTORE; err holds the first such message) and is
 * rolled back alone, so one bad commit never blocks a batch. Returns 0, or
 * a negative code when the transaction itself failed (then nothing landed
 * and every results[i] holds that code). */
int sl_store_commit(struct sl_store *s, const struct sl_commit *commits, size_t n, int *results,
		    struct sl_err *err);

/* ---- reading, for the CLI and the API (JSON documents, owned) ------------------
 * Times in these documents are ms since the epoch, null when unset. */
/* {"id", "workflow", "version", "status", "input", "output", "error",
 *  "correlation_id", "created_at", "finished_at", "steps": [{"id", "status",
 *  "output", "error", "attempts", "duration_ms", "started_at",
 *  "attempt_log": [{attempt, outcome, error_class, error, duration_ms}]}]} */
int sl_store_run_get(struct sl_store *s, const char *run_id, json_t **out, struct sl_err *err);
enum sl_run_status sl_store_run_status(struct sl_store *s, const char *run_id); /* -1 if none */

struct sl_run_filter {
	const char *workflow; /* NULL: any */
	int status;           /* -1: any */
	const char *root_run_id; /* NULL: any */
	const char *cursor;   /* NULL: from the newest */
	size_t limit;         /* 0: 50 */
	const char *tenant;   /* NULL: any (an API key's tenant scopes it) */
};
/* {"runs": [summaries newest first], "next_cursor": "..." | null} */
int sl_store_runs_list(struct sl_store *s, const struct sl_run_filter *f, json_t **out, struct sl_err *err);
/* Counts non-terminal runs of a tree (a root and what it spawned). */
int sl_store_tree_pending(struct sl_store *s, const char *root_run_id, int64_t *count, struct sl_err *err);
/* Counts runs by status: {"queued": n, ...} */
int sl_store_counts(struct sl_store *s, json_t **out, struct sl_err *err);

/* Cancels a run that is not terminal: status cancelled, task deleted (so the
 * worker holding it is fenced). SL_EINVAL when terminal, SL_ENOTFOUND. */
int sl_store_run_cancel(struct sl_store *s, const char *run_id, struct sl_err *err);
/* The same, with an audit entry (borrowed; the store fills its run_id)
 * appended in the same transaction: both land or neither. A store without
 * the atomic form cancels, then appends. */
int sl_store_run_cancel_audited(struct sl_store *s, const char *run_id, const json_t *audit, struct sl_err *err);

/* ---- approvals (DESIGN.md §7) ------------------------------------------------------
 * An approval document: {"id", "run_id", "step_id", "tenant", "workflow",
 * "kind", "status" (pending|approved|rejected|edited|expired), "reviewers",
 * "escalate_to", "escalated", "due_at", "on_timeout", "input", "evidence",
 * "proposed", "reason", "decision": {decision, final, by, reason, at} | null,
 * "created_at", "decided_at"}.
 * sl_store_run_load puts the approvals of a run that no step consumed yet
 * into context["_approvals"][step_id]: a decided one as {"id", "decision",
 * "final", "by", "reason", "at", "created_at", "kind"}, a pending one as
 * {"id", "decision": null, "due_at", "on_timeout", "escalate_to",
 * "escalated", "timeout_ms", "proposed", "kind", "created_at"}. */
struct sl_approval_filter {
	const char *status;   /* NULL: any */
	const char *workflow; /* NULL: any */
	const char *run_id;   /* NULL: any */
	const char *tenant;   /* NULL: any */
	int64_t since;        /* decided_at >= since when > 0 (export) */
	const char *cursor;   /* NULL: from the newest */
	size_t limit;         /* 0: 50 */
};
/* {"approvals": [documents, newest first], "next_cursor": ... | null} */
int sl_store_approvals_list(struct sl_store *s, const struct sl_approval_filter *f, json_t **out, struct sl_err *err);
int sl_store_approval_get(struct sl_store *s, const char *id, json_t **out, struct sl_err *err);
/* A person's decision on a pending approval, in ONE transaction with its
 * audit entry (borrowed, may be NULL; the store fills its run_id): the
 * approval gets status and decision ({decision, final, by, reason, at}),
 * the run is queued again at the same cursor (its task due now, the fence
 * moved on so a worker holding its timer is fenced). SL_ENOTFOUND; SL_EEXISTS
 * when it is no longer pending (a 409). *out (may be NULL) gets the
 * updated document. */
int sl_store_approval_decide(struct sl_store *s, const char *id, const char *status, const json_t *decision,
			     const json_t *audit, json_t **out, struct sl_err *err);

/* ---- dead letters ------------------------------------------------------------------- */
struct sl_dlq_filter {
	const char *workflow, *step_id; /* NULL: any */
	int error_class;                /* -1: any */
	int64_t since, until;           /* 0: unbounded */
	bool include_replayed;
	const char *cursor;
	size_t limit;                   /* 0: 50 */
	const char *id;                 /* NULL: any; else that one entry */
	const char *tenant;             /* NULL: any; else entries of that tenant's runs */
};
/* {"entries": [{"id","run_id","workflow","version","step_id","error_class",
 *  "error","evidence","created_at","replayed_at"}], "next_cursor": ...} */
int sl_store_dlq_list(struct sl_store *s, const struct sl_dlq_filter *f, json_t **out, struct sl_err *err);
/* How many entries the filter matches (its cursor and limit are ignored). */
int sl_store_dlq_count(struct sl_store *s, const struct sl_dlq_filter *f, int64_t *count, struct sl_err *err);
/* Replays a dead run from its failed step: the run is queued again at the
 * same cursor with its attempt counter reset, the entry marked replayed.
 * input (borrowed, may be NULL) replaces the run's .input; new_digest/version
 * (may be NULL/0) move it onto a newer definition (new_digest must have been
 * sl_store_def_put, else SL_ENOTFOUND). Completed steps stay. SL_EINVAL when
 * the entry was already replayed or its run is no longer dead. */
int sl_store_dlq_replay(struct sl_store *s, const char *dlq_id, const json_t *input, const char *new_digest,
			int new_version, char run_id_out[SL_ID_MAX], struct sl_err *err);
/* The same, with an audit entry (borrowed; the store fills the run_id) in
 * the same transaction; a store without the atomic form replays, then
 * appends. */
int sl_store_dlq_replay_audited(struct sl_store *s, const char *dlq_id, const json_t *input, const char *new_digest,
				int new_version, const json_t *audit, char run_id_out[SL_ID_MAX], struct sl_err *err);
/* Deletes replayed or old entries created before before_ms; returns how many. */
int sl_store_dlq_purge(struct sl_store *s, int64_t before_ms, int64_t *purged, struct sl_err *err);

/* ---- AI spend -------------------------------------------------------------------------- */
/* What the model calls of a route (scope "route") or a workflow (scope
 * "workflow") cost since since_ms, in USD: budgets start from it. */
int sl_store_ai_spent(struct sl_store *s, const char *scope, const char *name, int64_t since_ms, double *usd,
		      struct sl_err *err);

/* A workflow's runs that ended (or went to review) since since_ms, for
 * SLOs: how many, how many failed (dead, compensated), went to review, took
 * longer than slow_ms (completed ones), what their model calls cost, and
 * the 95th percentile duration of the completed ones (-1: none). */
struct sl_run_stats {
	int64_t runs, completed, failed, review, slow;
	double cost_usd;
	int64_t p95_ms;
};
int sl_store_run_stats(struct sl_store *s, const char *workflow, int64_t since_ms, int64_t slow_ms,
		       struct sl_run_stats *out, struct sl_err *err);

/* The outputs of a workflow's completed step, newest first, skipping the
 * newest offset, at most limit (drift windows). *out is an owned array. */
int sl_store_step_outputs(struct sl_store *s, const char *workflow, const char *step_id, size_t offset, size_t limit,
			  json_t **out, struct sl_err *err);

/* What model calls cost since since_ms, grouped by "workflow", "route",
 * "model" or "tenant": *out is an array (owned), most expensive first, of
 * {key (null for the chat gateway's calls outside a workflow), calls,
 * cache_hits, tokens_in, tokens_out, cost_usd, runs_completed,
 * cost_per_completed_run (null without completed runs)}. */
int sl_store_ai_costs(struct sl_store *s, const char *group_by, int64_t since_ms, json_t **out, struct sl_err *err);
/* The same, only the calls of one tenant (NULL: every tenant). */
int sl_store_ai_costs_tenant(struct sl_store *s, const char *group_by, int64_t since_ms, const char *tenant,
			     json_t **out, struct sl_err *err);

/* Records model calls made outside any run (the chat gateway): calls is an
 * array of call records (see sl_ai_result.calls); they count toward their
 * route's budget like a step's. tenant may be "" (none). */
int sl_store_ai_record(struct sl_store *s, const char *tenant, const json_t *calls, struct sl_err *err);

/* ---- idempotency records (outside run creation: webhook delivery ids, ...) ---- */
/* Looks up (scope, key): 0 and run_id filled when found and not expired,
 * SL_ENOTFOUND otherwise. */
int sl_store_idem_get(struct sl_store *s, const char *scope, const char *key, char run_id_out[SL_ID_MAX],
		      struct sl_err *err);
/* Deletes expired records; returns how many. */
int sl_store_idem_purge(struct sl_store *s, int64_t now_ms, int64_t *purged, struct sl_err *err);

/* ---- trigger state: what schedules and syncs remember across restarts ---- */
/* Reads the state kept under name ("schedule:WORKFLOW", "poll:WORKFLOW",
 * "autonomy.signals"):
 * 0 with *out owned (a JSON object), SL_ENOTFOUND when there is none. */
int sl_store_trigger_state_get(struct sl_store *s, const char *name, json_t **out, struct sl_err *err);
/* Replaces the state under name with state (borrowed, an object). */
int sl_store_trigger_state_put(struct sl_store *s, const char *name, const json_t *state, struct sl_err *err);

/* ---- the audit log: append-only, hash-chained (src/gov/audit.h) ----------------
 * Each entry is a JSON object with at least "action" (a string). The store
 * gives it "seq" (1, 2, 3, ... with no gaps) and "at" (now, unless set),
 * writes it in canonical form (sl_store_audit_canonical) and chains it:
 *   hash = SHA-256(prev_hash "\n" canonical text) as 64 lowercase hex
 * with prev_hash the previous entry's hash, or SL_AUDIT_GENESIS for seq 1.
 * The head is read and the entry written in one write transaction, so
 * concurrent appenders (threads or processes) still form one chain. */
#define SL_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define SL_AUDIT_HASH_LEN 64

/* Appends one entry (borrowed) in its own transaction; hash_out (may be
 * NULL) receives its hash. SL_EINVAL when entry is not an object with a
 * non-empty string "action". */
int sl_store_audit_append(struct sl_store *s, const json_t *entry, char hash_out[SL_AUDIT_HASH_LEN + 1],
			  struct sl_err *err);

struct sl_audit_filter {
	const char *tenant;   /* NULL: any */
	const char *action;   /* NULL: any; exact name ("run.start") */
	const char *run_id;   /* NULL: any */
	int64_t since, until; /* "at" in [since, until); 0: unbounded */
	const char *cursor;   /* NULL: from the newest; else a next_cursor */
	size_t limit;         /* 0: 50, at most 1000 */
};
/* {"entries": [entry + {"hash", "prev_hash"}, newest first],
 *  "next_cursor": "SEQ" | null}. Returns owned. */
int sl_store_audit_list(struct sl_store *s, const struct sl_audit_filter *f, json_t **out, struct sl_err *err);

/* One stored row as it is, for verification: nothing is parsed or checked.
 * The strings are borrowed for the callback's duration (NULL when the
 * column is NULL). */
struct sl_audit_row {
	int64_t seq;
	const char *prev_hash, *hash;
	const char *text;      /* the canonical entry the hash covers */
	size_t text_len;
	/* the copies kept in columns for filtering (they must agree with text) */
	int64_t at;
	const char *tenant, *action, *run_id;
};
/* fn returns 0 to go on, anything else to stop (sl_store_audit_scan then
 * returns that value). */
typedef int (*sl_audit_row_fn)(const struct sl_audit_row *row, void *ud);
/* Calls fn for every row in seq order, from one consistent snapshot. */
int sl_store_audit_scan(struct sl_store *s, sl_audit_row_fn fn, void *ud, struct sl_err *err);

/* The canonical text of an entry: sorted keys, compact, ASCII only, reals
 * with 17 significant digits. Returns owned (free()), NULL on OOM. */
char *sl_store_audit_canonical(const json_t *entry);
/* hash = SHA-256(prev "\n" text) as hex; prev is 64 hex chars. */
void sl_store_audit_hash(const char *prev, const char *text, size_t len, char out[SL_AUDIT_HASH_LEN + 1]);

/* ---- API keys (src/gov/auth.h): only the hash of a key's secret is kept -------- */
struct sl_api_key {
	char id[17];        /* 16 lowercase hex */
	char hash[65];      /* SHA-256 of the secret, hex */
	char principal[128];
	char kind[16];      /* user, service, agent */
	char role[16];      /* viewer, operator, admin */
	char tenant[128];   /* a tenant, or "*" */
	char name[128];     /* a label; may be "" */
	int64_t created_at, expires_at, revoked_at; /* ms; 0: never / not revoked */
};
/* Stores a new key (created_at 0: now) with its audit entry (borrowed, may
 * be NULL) in the same transaction. SL_EEXISTS when the id is taken. */
int sl_store_key_put(struct sl_store *s, const struct sl_api_key *k, const json_t *audit, struct sl_err *err);
/* Reads one key by id into out: SL_ENOTFOUND when there is none. */
int sl_store_key_get(struct sl_store *s, const char *id, struct sl_api_key *out, struct sl_err *err);
/* {"keys": [{id, name, principal, kind, role, tenant, created_at,
 *  expires_at, revoked_at}]} oldest first, never a hash. Owned. */
int sl_store_key_list(struct sl_store *s, json_t **out, struct sl_err *err);
/* Revokes a key now, with its audit entry in the same transaction.
 * SL_ENOTFOUND, or SL_EINVAL when it was already revoked. */
int sl_store_key_revoke(struct sl_store *s, const char *id, const json_t *audit, struct sl_err *err);

/* ---- kill switches (src/gov/auth.h) ------------------------------------------------
 * A pause is (kind, name): "workflow", "connector" or "provider". A task
 * the engine parks because of one carries its key "KIND:NAME". */
/* Pauses (paused = true) or resumes (name, kind) with its audit entry
 * (borrowed, may be NULL) in the same transaction; *changed (may be NULL)
 * says whether anything changed (pausing twice changes nothing). A resume
 * makes every task parked under KIND:NAME due at once and wakes the workers
 * of every process (PostgreSQL: NOTIFY). by: who, for the list. */
int sl_store_pause_set(struct sl_store *s, const char *kind, const char *name, bool paused, const char *by,
		       const json_t *audit, bool *changed, struct sl_err *err);
/* {"pauses": [{kind, name, by, at}]} oldest first. Owned. */
int sl_store_pause_list(struct sl_store *s, json_t **out, struct sl_err *err);
/* Parks a claimed task: due at due_at, lease given back, marked with key
 * ("KIND:NAME") so a resume wakes it. A task whose fence moved on is left
 * alone (SL_EFENCED). */
int sl_store_task_park(struct sl_store *s, const struct sl_task *t, const char *key, int64_t due_at,
		       struct sl_err *err);

#endif
