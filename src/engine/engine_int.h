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

	atomic_uint_fast64_t stat_steps, stat_commits, stat_fenced, stat_claims, stat_runs_done;
	struct sl_otlp *otlp; /* the span exporter while started, when otlp_endpoint is set */
};

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
};

void *engine_worker_main(void *arg);
void engine_wake(struct sl_engine *e);
void engine_notify_done(struct sl_engine *e);
/* Returns the definition of digest with a reference, compiling stored
 * source when this process did not load that version. */
struct sl_workflow *engine_definition(struct sl_engine *e, const char *digest, struct sl_err *err);
int engine_check_input(const struct sl_workflow *w, const json_t *input, struct sl_err *err);

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

/* What a parked step asks a person (agreed with the approvals branch). */
struct approval_request {
	const char *kind;   /* "policy" | "autonomy" */
	json_t *proposed;   /* the action as it would run: {connector, action, effect, input} (borrowed) */
	json_t *evidence;   /* ai output, rationale, confidence, policy checks (borrowed) */
	const char *reason;
	json_t *reviewers;  /* array of principals / role:R, or NULL (borrowed) */
};
/* Parks the run at st until a person decides (status review). The decision
 * re-queues the run at the same step with context._approvals[step_id] set
 * (see gate_approval). */
void park_for_approval(struct slot *s, struct outcome *o, const struct sl_step *st, const struct approval_request *req,
		       int attempts, int64_t started);

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
/* The decision recorded for step_id in the run's context._approvals, or
 * NULL: {"id", "decision": approved|edited|rejected|expired, "final", "by", "reason"}. */
const json_t *gate_approval(const struct slot *s, const char *step_id);
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
