/* engine_int.h: private to src/engine/. */
#ifndef SL_ENGINE_INT_H
#define SL_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/engine.h"

struct sl_engine {
	struct sl_project *project; /* borrowed */
	struct sl_store *store;     /* borrowed */
	int workers, batch;
	int64_t lease_ms;
	char owner[128];

	pthread_t *threads;
	int nthreads;
	pthread_t listener;      /* wakes the workers on the store's notifications */
	bool has_listener;
	bool started;
	atomic_bool running;

	pthread_mutex_t mu;      /* guards the sequence numbers and the cvs */
	pthread_cond_t work_cv;  /* new work may be due */
	pthread_cond_t done_cv;  /* a run reached a terminal status */
	uint64_t wake_seq, done_seq;

	pthread_mutex_t defs_mu; /* guards defs */
	struct sl_workflow **defs; /* one reference each, by digest */
	size_t ndefs, capdefs;

	/* triggers (serve, worker): the scheduler thread, woken by sched_cv to stop */
	bool triggers, has_scheduler;
	pthread_t scheduler;
	pthread_cond_t sched_cv;
	struct sched *sched;
	bool has_poller;
	pthread_t poller;
	struct poller *polls;

	atomic_uint_fast64_t stat_steps, stat_commits, stat_fenced, stat_claims, stat_runs_done;
	struct sl_otlp *otlp; /* the span exporter while started, when otlp_endpoint is set */

	/* kill switches (pause.c): the store's pauses, cached; refreshed at most
	 * every PAUSE_REFRESH_MS by whichever worker looks first */
	pthread_mutex_t pause_mu;  /* guards pauses */
	json_t *pauses;            /* {"KIND:NAME": true} */
	atomic_int npauses;        /* its size: 0 is the fast path of every step */
	atomic_int_fast64_t pauses_at; /* sl_mono_ms() of the last load; 0: never */
	bool mirror_signals;           /* read the server's autonomy signals from the store (gate.c) */
	atomic_int_fast64_t signals_at; /* sl_mono_ms() of their last load; 0: never */
	struct engine_streams *streams; /* stream consumers (streams.c), NULL when none run */
};

struct slot;
/* pause.c: whether the step a slot is about to run is held by a kill
 * switch; if so the task is parked (lease given back, due again later or at
 * once on resume) and true is returned: the caller drops the slot. */
bool engine_park_if_paused(struct sl_engine *e, struct slot *s);
void engine_pauses_free(struct sl_engine *e);

struct engine_worker {
	struct sl_engine *engine;
	int index;
	char owner[160];
};

/* A run a worker holds: its lease, its state and its definition. */
struct slot {
	struct sl_task task;
	struct sl_run run;
	struct sl_workflow *wf; /* one reference */
};

/* What executing one step decided: a commit plus everything it points to,
 * owned here until the commit is done (outcome_free). */
struct outcome {
	struct sl_commit c;
	struct sl_step_rec step;
	struct sl_attempt_rec att;
	struct sl_dlq_new dlq;
	json_t *step_output, *step_error, *run_output, *run_error, *evidence, *payload;
	json_t *ai_calls; /* an ai step's model calls, committed with it */
	json_t *audit;    /* audit entries committed with it (array), or NULL */
	json_t *spawn_audit; /* the run.start entries of spawns (array), or NULL */
	char *att_step_id, *att_error, *dlq_error;
	struct sl_run_new *spawn;
	char **spawn_keys;
	size_t nspawn;
	bool ends_run; /* the run reaches a terminal status (or parks for review) with this commit */
	const char *kind; /* the step's kind ("call"), for metrics; NULL when no step ran */

	/* approvals (park_for_approval, and a decision read back) */
	struct sl_approval_new apr;     /* o->c.approval points here when parking */
	struct sl_approval_set apr_set; /* o->c.approval_set: a timeout */
	char apr_id[SL_ID_MAX], apr_consumed[SL_ID_MAX];
	json_t *apr_hold;               /* keeps what apr and apr_set point to */
	char *apr_kind;                 /* for metrics: the approval's kind ... */
	const char *apr_decision;       /* ... the decision the step read (static string) ... */
	double apr_wait_s;              /* ... and how long the run waited for it */
	bool apr_escalated;             /* a timeout escalated it */
	bool approved;                  /* this execution runs on an approved or edited decision */
	json_t *apr_final;              /* an edited decision on a gated call: the action's input */
	json_t *apr_doc;                /* the decision this execution consumed (gate_approval) */
};

/* What a gate asks a person to decide (DESIGN.md §7). Every gate parks the
 * same way: an ai step's unsure answer ("review"), an approval step
 * ("approval"), a call held by a policy rule ("policy") or by an AI step's
 * autonomy level ("autonomy"). Borrowed by park_for_approval. */
struct approval_request {
	const char *kind;
	json_t *proposed;  /* the value a decision approves or edits */
	json_t *evidence;  /* what the reviewer sees: source, rationale, confidence, policy checks */
	const char *reason;
	json_t *reviewers; /* may be NULL: the step's or workflow's */
	/* optional (zero: none) */
	json_t *input;           /* what the step read (the export's input) */
	int64_t timeout_ms;      /* 0: waits for ever */
	const char *on_timeout;  /* "escalate", "reject", "approve" */
	json_t *escalate_to;
};
/* Parks the run on a new approval, created in this outcome's commit (so a
 * crash never leaves a parked run without its approval): the step's status
 * is review, the run's too; with a timeout the run's task is the timer.
 * A decision re-queues the run at the SAME step, which runs again with
 * s->run.context["_approvals"][step id] = {"id", "decision":
 * "approved"|"edited"|"rejected"|"expired", "final", "by", "reason", ...};
 * approval_decision() below reads it. attempts: the step's attempt count;
 * started: when the step started (ms). */
void park_for_approval(struct slot *s, struct outcome *o, const struct sl_step *st,
		       const struct approval_request *req, int attempts, int64_t started);
/* The decision a person (or a timeout) made on the step's approval, or
 * NULL. A gate that finds one must not park again: approved / edited mean
 * go on (with "final"), rejected / expired mean fail with class policy.
 * approval_consume marks it read in this outcome's commit. */
const json_t *approval_decision(const struct slot *s, const struct sl_step *st);
void approval_consume(struct slot *s, struct outcome *o, const struct sl_step *st, const json_t *decision);

void *engine_worker_main(void *arg);
void engine_wake(struct sl_engine *e);
void engine_notify_done(struct sl_engine *e);
/* Returns the definition of digest with a reference, compiling stored
 * source when this process did not load that version. */
struct sl_workflow *engine_definition(struct sl_engine *e, const char *digest, struct sl_err *err);
int engine_check_input(const struct sl_workflow *w, const json_t *input, struct sl_err *err);

/* schedule.c: the scheduler of `trigger: {schedule}` workflows, while this
 * process holds the "scheduler" singleton. start: -1 when no workflow has a
 * schedule (no thread). stop: after running is cleared; idempotent. */
int engine_scheduler_start(struct sl_engine *e);
void engine_scheduler_stop(struct sl_engine *e);

/* poll.c: the poller of `trigger: {poll}` workflows, while this process
 * holds the "poller" singleton (like the scheduler's start and stop). */
int engine_poller_start(struct sl_engine *e);
void engine_poller_stop(struct sl_engine *e);
/* One sync pass of w from since (may be NULL); stops early when running
 * (may be NULL: never) goes false. *max_changed (owned) gets the new
 * high-water mark. */
int engine_sync_pass(struct sl_engine *e, const struct sl_workflow *w, const char *since,
		     const atomic_bool *running, sl_sync_progress_fn fn, void *ud, struct sl_sync_progress *p,
		     char **max_changed, struct sl_err *err);

/* step.c: executes the next step of s (or its compensation) into o. */
void step_execute(struct sl_engine *e, struct slot *s, struct outcome *o);
/* After a landed commit: folds o into s->run so the worker can go on. */
void step_apply(struct slot *s, const struct outcome *o);
void outcome_free(struct outcome *o);
/* Adds an audit entry (taken) to the outcome's commit. */
void outcome_audit(struct outcome *o, json_t *entry);

/* ai steps (step.c), shared with the tool loop (tool.c) */
/* The run context without the fields read rules deny to st. Owned. */
json_t *step_ai_context(struct sl_engine *e, const struct slot *s, const struct sl_step *st);
/* st's prompt rendered over context with {{input}}. Owned, or NULL with err. */
char *step_ai_prompt(const struct slot *s, const struct sl_step *st, const json_t *context, const json_t *input,
		     struct sl_err *err);
void step_audit_ai(struct outcome *o, const struct slot *s, const struct sl_step *st, const struct sl_ai_result *res,
		   int rc, const struct sl_err *err);
struct gate;
/* A step.write entry for a call with a downstream effect (g: the decision
 * that let it through, may be NULL). */
void step_audit_call(struct outcome *o, const struct slot *s, const struct sl_step *st,
		     const struct sl_connector *conn, const struct sl_action *act, const char *key, int rc,
		     const struct sl_err *err, int status, bool compensate, const struct gate *g);
/* tool.c: an `ai: {task: tool}` step's bounded loop of model tool calls.
 * Returns 0 (*out: the answer), a negative code, or 1 when writes the
 * model asked for wait for a person: *out is the proposal {calls, answer},
 * *evidence {kind, reason, reviewers, tools, ...}. Run again after a
 * decision, it makes the approved calls instead of asking the model. */
int step_exec_tool(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st, json_t **out,
		   json_t **evidence, struct sl_err *err);

/* ---- governance before effects (gate.c) ---------------------------------------- */

enum gate_verdict { GATE_GO, GATE_DENY, GATE_PARK };
struct gate {
	enum gate_verdict verdict;
	struct sl_err err;       /* GATE_DENY: class policy, the message names the rule */
	const char *rule;        /* the deciding rule's id ("default", "autonomy", "approval"); borrowed */
	const char *decision;    /* "allow", "deny", "require_approval" */
	const char *kind;        /* GATE_PARK: "policy" or "autonomy" */
	char reason[512];
	json_t *checks;          /* owned: the policy checks made ({rule, decision} ...) */
	json_t *reviewers;       /* owned or NULL */
	json_t *evidence;        /* owned: what a reviewer needs (ai outputs, checks) */
	const char *approval_id; /* borrowed from the run context when an approval let it through */
};
void gate_free(struct gate *g);
/* The decision for step_id: the one this execution consumed
 * (approval_consume keeps it in o), else the run's context._approvals
 * entry, or NULL: {"id", "decision": approved|edited|rejected|expired,
 * "final", "by", "reason"}. */
const json_t *gate_approval(const struct slot *s, const struct outcome *o, const char *step_id);
/* Decides whether the call of act (by step st, with *input) may run now:
 * policy rules, then the autonomy of the ai steps that came before it in
 * the run. An approval already given (gate_approval) lets it through; an
 * edited one replaces *input with the approved value. Audits denials and
 * approval requests into o. tool_of: the tool step making the call, or
 * NULL for a call step. */
void gate_call(struct sl_engine *e, struct slot *s, struct outcome *o, const struct sl_step *st,
	       const struct sl_step *tool_of, const struct sl_connector *conn, const struct sl_action *act,
	       json_t **input, struct gate *g);
/* `trigger` rules before a run is created: 0, or a policy-class error (a
 * require_approval rule refuses too: no run exists to wait). A refusal is
 * audited in its own transaction. */
int gate_trigger(struct sl_engine *e, const struct sl_workflow *w, const struct sl_start *st, const json_t *input,
		 struct sl_err *err);
/* `suggest` rules before an ai step asks its model: 0 (go), 1 (the answer
 * goes to review; why says so), or a policy-class error. Audited into o. */
int gate_suggest(struct sl_engine *e, const struct slot *s, struct outcome *o, const struct sl_step *st,
		 struct sl_err *err, char *why, size_t cap);

#endif
