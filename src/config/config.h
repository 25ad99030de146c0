/*
 * config: a user's project folder (DESIGN.md §2) loaded into a checked,
 * compiled model: settings, contracts, connectors, workflows, prompts.
 *
 * Every problem becomes a diagnostic `FILE:LINE:COL: message`, and loading
 * goes on after an error so that `sluice check` lists all of them at once.
 * YAML is read with libfyaml; each file becomes JSON plus a map from JSON
 * pointer to source position, so every layer can name a position.
 *
 * Ownership: a project owns everything it points to. Workflows are reference
 * counted because the engine keeps older versions alive for runs that started
 * on them.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ai/ai.h"
#include "connector/connector.h"
#include "contract/contract.h"
#include "expr/expr.h"
#include "gov/policy.h"
#include "util/util.h"

/* ---- YAML documents with positions --------------------------------------- */
struct sl_locmap; /* JSON pointer -> line:col */
/* Parses YAML text (one document) into JSON. Scalars follow the YAML 1.2
 * core schema (plain true/false/null/ints/floats; quoted scalars are
 * strings). Duplicate keys, anchors-with-merge errors, syntax errors become
 * diagnostics. Returns owned json (NULL on a syntax error; after other
 * errors the rest of the document is still returned, so check diags) and,
 * if locs is not NULL, an owned location map (NULL with a NULL result).
 * An empty document is json null. Positions are 1-based; a quoted
 * scalar's is its first character inside the quotes. */
json_t *sl_yaml_parse(const char *text, size_t len, const char *file, struct sl_locmap **locs,
		      struct sl_diags *diags);
/* Position of the value at pointer (falls back to the closest parent). */
void sl_locmap_find(const struct sl_locmap *m, const char *pointer, int *line, int *col);
/* Position of the KEY at pointer (for unknown-key errors), else the value's. */
void sl_locmap_find_key(const struct sl_locmap *m, const char *pointer, int *line, int *col);
void sl_locmap_free(struct sl_locmap *m);

/* ---- the model --------------------------------------------------------------- */
struct sl_loc {
	const char *file; /* borrowed from the owning workflow */
	int line, col;
};

enum sl_step_kind { SL_STEP_MAP, SL_STEP_CALL, SL_STEP_WAIT, SL_STEP_EMIT, SL_STEP_AI, SL_STEP_APPROVAL };
const char *sl_step_kind_name(enum sl_step_kind k);

enum sl_on_error {
	SL_ON_ERROR_DEAD,       /* retry (per retry:) then dead-letter: the default */
	SL_ON_ERROR_CONTINUE,   /* record the error as the step's output, go on */
	SL_ON_ERROR_COMPENSATE, /* run compensations of completed steps in reverse */
};

struct sl_retry {
	int max_attempts; /* total attempts, >= 1; default 3 for call, 1 otherwise */
	int64_t base_ms;  /* default 200 */
	int64_t max_ms;   /* default 30000 */
};

struct sl_prompt;

/* An `ai:` step (DESIGN.md §6). */
struct sl_ai_step {
	enum sl_ai_task task;
	char *route;                   /* a route of models.yaml */
	char *prompt_name;             /* prompts/NAME.md, NULL: the input alone */
	const struct sl_prompt *prompt; /* borrowed from the project */
	struct sl_expr *input;         /* the text the task reads ({{input}}) */
	struct sl_expr *vars;          /* NULL, or an object of template variables */
	char **labels;                 /* classify / route */
	size_t nlabels;
	struct sl_schema *contract;    /* extract */
	double min_confidence;         /* 0: none */
	int max_tokens;                /* 0: the default */
	char *role;                    /* autonomy level's name ("recommender" by default) */
	enum sl_autonomy autonomy;     /* `autonomy:` (alias `role:`); SL_AUTONOMY_DEFAULT when absent */
	unsigned demote_on;            /* bits (1 << enum sl_signal): act one level lower while one holds */
	int max_turns;                 /* tool: model turns at most (0: 5) */
};

/* The live signals an ai step's autonomy may follow (`demote_on:`). */
enum sl_signal { SL_SIGNAL_DRIFT, SL_SIGNAL_SLO_BURN, SL_SIGNAL_BUDGET, SL_SIGNAL__COUNT };
const char *sl_signal_name(enum sl_signal s);

struct sl_step {
	char *id;
	int index;
	enum sl_step_kind kind;
	struct sl_loc loc;
	struct sl_expr *when; /* NULL: always */
	struct sl_retry retry;
	int64_t timeout_ms; /* 0: none (call: the connector's default) */
	enum sl_on_error on_error;
	struct sl_schema *output_contract; /* optional `contract:` the output must meet */

	/* map */
	struct sl_expr *map;

	/* call */
	char *call;                    /* "helpdesk.tickets.create" */
	struct sl_connector *connector; /* borrowed from the project */
	const struct sl_action *action;
	struct sl_expr *with;          /* NULL: json null */
	struct sl_expr *idempotency_key; /* NULL: "<run id>:<step id>" */

	/* compensate (call steps): an action and its input */
	char *compensate;
	struct sl_connector *comp_connector;
	const struct sl_action *comp_action;
	struct sl_expr *comp_with; /* NULL: the step's output */

	/* wait: a duration or a time (jq yielding RFC 3339 or epoch ms) */
	int64_t wait_ms;
	struct sl_expr *wait_until;

	/* emit: to an internal topic; workflows with trigger {event: TOPIC} start */
	char *topic;
	struct sl_expr *payload; /* NULL: the run context's .input */
	/* emit sink: an action (effect write) that receives each event as a
	 * structured CloudEvent (id RUN_ID:STEP_ID, source sluice/WORKFLOW) */
	char *sink;
	struct sl_connector *sink_connector; /* borrowed from the project */
	const struct sl_action *sink_action;
	/* emit to a stream connector (emit: {stream: CONNECTOR}): a CloudEvent
	 * published through its `publish` action; topic is then NULL */
	struct sl_connector *emit_connector; /* borrowed from the project */
	const struct sl_action *emit_action;
	char *emit_type; /* the CloudEvents type; NULL: "sluice.WORKFLOW.STEP" */

	/* ai */
	struct sl_ai_step ai;

	/* approval: a person decides (DESIGN.md §7) */
	struct sl_approval_step {
		json_t *reviewers;      /* array of principals / "role:NAME"; NULL: the workflow's */
		json_t *escalate_to;    /* array, or NULL */
		struct sl_expr *evidence; /* NULL: the run's input */
		int64_t timeout_ms;     /* 0: waits for ever */
		char *on_timeout;       /* "escalate", "reject", "approve"; NULL with no timeout */
	} approval;
	/* `allow_actions:` (CONNECTOR.ACTION globs, NULL-terminated) that a
	 * supervised ai step may lead to; NULL: the workflow's */
	char **allow_actions;
};

enum sl_trigger_kind { SL_TRIGGER_NONE, SL_TRIGGER_WEBHOOK, SL_TRIGGER_EVENT, SL_TRIGGER_SCHEDULE, SL_TRIGGER_POLL,
			SL_TRIGGER_STREAM };
/* How a polled source gives its next page: ?page=N, or a cursor from the answer. */
enum sl_pagination { SL_PAGINATION_PAGE, SL_PAGINATION_CURSOR };
/* trigger {poll}: a read action walked page by page from a stored
 * high-water mark; one run per new or changed record (id, version). The
 * action gets {since, page, per_page, cursor}; the expressions read its
 * output (items, next) or one record (the others). */
struct sl_sync {
	struct sl_connector *connector; /* borrowed */
	const struct sl_action *action;
	int64_t every_ms;
	enum sl_pagination pagination;
	int per_page;
	struct sl_expr *items, *next, *id, *version, *deleted, *changed_at;
	bool skip_deletes; /* on_delete: skip; else a run with op "delete" */
};
/* What a schedule does with the slots it missed while nothing ran. */
enum sl_catch_up {
	SL_CATCH_UP_ONE,  /* the default: the latest missed slot fires once */
	SL_CATCH_UP_NONE, /* missed slots are skipped (counted); only an on-time slot fires */
	SL_CATCH_UP_ALL,  /* every missed slot fires, oldest first */
};
struct sl_trigger {
	enum sl_trigger_kind kind;
	struct sl_connector *stream; /* stream: a stream connector (borrowed from the project) */
	char *group;                 /* stream: consumer group; NULL: the connector's */
	int consumers;               /* stream: concurrent consumers in each process (default 4) */
	char *path;            /* webhook: "/hooks/email" */
	char *event;           /* event: topic or CloudEvents type */
	char *hmac_secret_ref; /* "env:NAME"; resolved by the server, not here */
	/* schedule: the cron expression as written, its zone (NULL: UTC), and
	 * both compiled (owned) */
	char *schedule;
	char *timezone;
	struct sl_cron *cron;
	struct sl_tz *tz;
	enum sl_catch_up catch_up;
	/* poll: "crm.contacts.list" and its sync settings */
	char *poll;
	struct sl_sync sync;
	struct sl_schema *contract; /* input contract (webhook/event/API), may be NULL */
	struct sl_loc loc;
};

struct sl_workflow {
	_Atomic int refs;
	char *name;
	int version;
	char *file;    /* path as given (relative to the project dir for messages) */
	char *source;  /* the YAML text, stored with runs so old versions survive */
	char *digest;  /* sha256 of name, version and source */
	char *owner;
	char *description;
	struct sl_trigger trigger;
	struct sl_expr *output; /* optional `output:` jq over the context; NULL: last step's output */
	json_t *reviewers;      /* who decides its approvals by default (array); NULL: ["role:operator"] */
	struct sl_step *steps;
	size_t nsteps;
	/* `slo:` objectives; a value < 0 is not set */
	struct {
		double p95_ms, max_error_rate, max_review_rate, max_cost_usd;
	} slo;
	bool has_slo;
	char **allow_actions; /* workflow-level `allow_actions:` (NULL-terminated), or NULL */
};
void sl_workflow_ref(struct sl_workflow *w);
void sl_workflow_unref(struct sl_workflow *w);
const struct sl_step *sl_workflow_step(const struct sl_workflow *w, const char *id);

/* sluice.yaml `tenants:`: a tenant's runtime share for fair claiming
 * (store.h sl_tenant_share); who a tenant is lives in policies.yaml. */
struct sl_tenant_conf {
	char *name;
	double weight;       /* > 0, default 1 */
	int max_concurrency; /* 0: no limit */
};

struct sl_settings {
	char *name;       /* project name */
	char *store;      /* "sqlite:.sluice/sluice.db" by default, relative to the dir */
	int workers;      /* worker threads, default 2 */
	char *listen;     /* "127.0.0.1:8080" */
	char *log_level;  /* "info" */
	int64_t lease_ms; /* task lease, default 30000 */
	int batch;        /* tasks a worker holds and commits together, default 16 */
	int64_t dlq_retention_ms; /* dead-letter entries older than this are purged, default 30 days */
	int64_t idem_ttl_ms;      /* how long API, webhook, event and stream idempotency keys are kept, default 30 days */
	char *otlp_endpoint;      /* OTLP/HTTP collector for run spans; NULL: none */
	struct sl_tenant_conf *tenants; /* `tenants:` in file order */
	size_t ntenants;
};

struct sl_prompt {
	char *name; /* file name without .md */
	char *text;
	char digest[65];
};

struct sl_project {
	char *dir;
	struct sl_settings settings;
	struct sl_contracts *contracts;
	struct sl_connector **connectors;
	size_t nconnectors;
	struct sl_workflow **workflows; /* one reference each */
	size_t nworkflows;
	struct sl_prompt *prompts;
	size_t nprompts;
	struct sl_ai *ai; /* models.yaml: providers, models, routes (never NULL once loaded) */
	/* while loading, when models.yaml has errors: its routes section, so a
	 * workflow naming a declared (but broken) route gets no second error */
	json_t *broken_routes;
	/* policies.yaml's tenants: and principals: (src/gov/auth.h); never NULL
	 * once loaded (no file: one tenant "default", no principals) */
	struct sl_principals *principals;
	struct sl_policy *policy; /* policies.yaml rules (never NULL once loaded; empty without the file) */
};

struct sl_load_opts {
	bool resolve_secrets; /* false under `sluice check` */
	struct sl_diags *warnings; /* where warnings go (policy rules that match nothing); NULL: dropped */
};

/* Loads and checks DIR. Every problem goes to diags. Returns 0 and a project
 * when there were no errors; otherwise SL_EINVAL and *out NULL. */
int sl_project_load(const char *dir, const struct sl_load_opts *opts, struct sl_project **out,
		    struct sl_diags *diags);
void sl_project_free(struct sl_project *p);
struct sl_workflow *sl_project_workflow(const struct sl_project *p, const char *name); /* borrowed */
struct sl_connector *sl_project_connector(const struct sl_project *p, const char *name);
const struct sl_prompt *sl_project_prompt(const struct sl_project *p, const char *name);

/* Compiles a workflow from stored source against p's connectors and
 * contracts (a run finishing on the version it started with). Returns owned
 * (refs = 1) or NULL with diags. */
struct sl_workflow *sl_workflow_compile(const struct sl_project *p, const char *file, const char *source,
					struct sl_diags *diags);

/* Prints diagnostics as `FILE:LINE:COL: error: message`, then the source line
 * with a caret under the column (jq's locfile.c), reading files relative to
 * base_dir, else as named (config diagnostics already hold the path as the
 * user gave it, DIR/workflows/x.yaml). The value of a key that names a
 * secret (hmac_secret, token, password, ...) is shown as stars. */
void sl_diags_print(FILE *f, const struct sl_diags *d, const char *base_dir, bool color);
/* The same with another word than "error" ("warning"). */
void sl_diags_print_level(FILE *f, const struct sl_diags *d, const char *base_dir, bool color, const char *level);

/* The key tables of each block, for docs (NULL-name terminated). */
extern const struct sl_conf_key sl_settings_keys[];
extern const struct sl_conf_key sl_workflow_keys[];
extern const struct sl_conf_key sl_step_keys[];
/* The nested blocks: trigger, trigger.webhook, trigger.event (mapping form),
 * step retry, wait (mapping form), emit (mapping form), compensate (mapping
 * form), slo. */
extern const struct sl_conf_key sl_trigger_keys[];
extern const struct sl_conf_key sl_webhook_keys[];
extern const struct sl_conf_key sl_event_keys[];
extern const struct sl_conf_key sl_sync_keys[];
extern const struct sl_conf_key sl_stream_trigger_keys[];
extern const struct sl_conf_key sl_retry_keys[];
extern const struct sl_conf_key sl_wait_keys[];
extern const struct sl_conf_key sl_emit_keys[];
extern const struct sl_conf_key sl_compensate_keys[];
extern const struct sl_conf_key sl_slo_keys[];
extern const struct sl_conf_key sl_ai_step_keys[];
extern const struct sl_conf_key sl_approval_keys[];

#endif
