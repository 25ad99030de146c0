/*
 * store_int.h: private to src/store/. The table every store implementation
 * fills (SQLite's sqlite3_io_methods, Fluent Bit's flb_output_plugin), and
 * the helpers the implementations share.
 *
 * store.c owns the public functions: it checks arguments once, for every
 * implementation, then calls through s->ops. An implementation sees only
 * well-formed calls (non-NULL store, out pointers and required strings).
 * A NULL slot means "not supported by this store" (SL_EINVAL).
 */
#ifndef SL_STORE_INT_H
#define SL_STORE_INT_H

#include "store/store.h"

struct sl_store_group; /* store.c: the run-creation group commit */

/* Every implementation's handle starts with this. store.c sets group after
 * open and frees it before close; an implementation leaves it alone. */
/* The tenants' shares for fair claiming (sl_store_set_tenants): sorted by
 * tenant (strcmp), strings owned. */
struct sl_fair {
	struct sl_tenant_share *t;
	size_t n;
};

struct sl_store {
	const struct sl_store_ops *ops;
	struct sl_store_group *group;
	struct sl_fair fair; /* store.c sets and frees it; claims read it */
};

/* One run to create in a batch (run_create_many). The implementation fills
 * run_id, existed, rc and, when rc != 0, err. */
struct sl_store_create {
	const struct sl_run_new *r;
	char run_id[SL_ID_MAX];
	bool existed;
	int rc;
	struct sl_err err;
};

struct sl_store_ops {
	const char *name; /* "sqlite": also the URL scheme that selects it */
	/* target is the URL with "NAME:" (and a following "//") removed. */
	int (*open)(const char *target, struct sl_store **out, struct sl_err *err);
	void (*close)(struct sl_store *s);
	int (*schema_version)(struct sl_store *s);

	int (*def_put)(struct sl_store *s, const char *digest, const char *name, int version, const char *file,
		       const char *source, struct sl_err *err);
	int (*def_get)(struct sl_store *s, const char *digest, char **file, char **source, struct sl_err *err);

	/* Creates n runs in ONE transaction, each in its own savepoint: one
	 * that fails is rolled back alone (its rc and err say why) and the others
	 * land. A repeated idempotency key inside the batch finds the first.
	 * Returns 0, or a negative code when the transaction itself failed (then
	 * nothing landed and every item holds that code). store.c batches
	 * concurrent sl_store_run_create calls into one call of this. */
	int (*run_create_many)(struct sl_store *s, struct sl_store_create *items, size_t n);
	int (*claim)(struct sl_store *s, const char *owner, int64_t lease_ms, size_t max, struct sl_task *out,
		     size_t *n, struct sl_err *err);
	int (*renew)(struct sl_store *s, struct sl_task *tasks, size_t n, int64_t lease_ms, bool *lost,
		     struct sl_err *err);
	int64_t (*next_due)(struct sl_store *s);
	int (*run_load)(struct sl_store *s, const char *run_id, struct sl_run *out, struct sl_err *err);
	int (*commit)(struct sl_store *s, const struct sl_commit *commits, size_t n, int *results,
		      struct sl_err *err);

	int (*run_get)(struct sl_store *s, const char *run_id, json_t **out, struct sl_err *err);
	int (*run_status)(struct sl_store *s, const char *run_id); /* -1 if none */
	int (*runs_list)(struct sl_store *s, const struct sl_run_filter *f, json_t **out, struct sl_err *err);
	int (*tree_pending)(struct sl_store *s, const char *root_run_id, int64_t *count, struct sl_err *err);
	int (*counts)(struct sl_store *s, json_t **out, struct sl_err *err);
	int (*run_cancel)(struct sl_store *s, const char *run_id, struct sl_err *err);

	int (*dlq_list)(struct sl_store *s, const struct sl_dlq_filter *f, json_t **out, struct sl_err *err);
	int (*dlq_replay)(struct sl_store *s, const char *dlq_id, const json_t *input, const char *new_digest,
			  int new_version, char run_id_out[SL_ID_MAX], struct sl_err *err);
	int (*dlq_count)(struct sl_store *s, const struct sl_dlq_filter *f, int64_t *count, struct sl_err *err);
	int (*dlq_purge)(struct sl_store *s, int64_t before_ms, int64_t *purged, struct sl_err *err);

	int (*idem_get)(struct sl_store *s, const char *scope, const char *key, char run_id_out[SL_ID_MAX],
			struct sl_err *err);
	int (*idem_purge)(struct sl_store *s, int64_t now_ms, int64_t *purged, struct sl_err *err);
	int (*release)(struct sl_store *s, const struct sl_task *tasks, size_t n, struct sl_err *err);
	int (*lease_owners)(struct sl_store *s, json_t **out, struct sl_err *err);
	int (*release_owner)(struct sl_store *s, const char *owner, int64_t *released, struct sl_err *err);
	int (*run_stats)(struct sl_store *s, const char *workflow, int64_t since_ms, int64_t slow_ms,
			 struct sl_run_stats *out, struct sl_err *err);
	int (*step_outputs)(struct sl_store *s, const char *workflow, const char *step_id, size_t offset, size_t limit,
			    json_t **out, struct sl_err *err);
	int (*ai_costs)(struct sl_store *s, const char *group_by, int64_t since_ms, json_t **out, struct sl_err *err);
	int (*ai_record)(struct sl_store *s, const char *tenant, const json_t *calls, struct sl_err *err);
	int (*ai_spent)(struct sl_store *s, const char *scope, const char *name, int64_t since_ms, double *usd,
			struct sl_err *err);
	/* Waits up to timeout_ms for work made due elsewhere: 1 woken, 0 timed
	 * out, negative on error. NULL: no notifications (store.c sleeps). */
	int (*wait)(struct sl_store *s, int64_t timeout_ms);
	/* NULL: one process per store, so always held. */
	int (*try_singleton)(struct sl_store *s, const char *name, bool *held);
	/* The audit log. audit_append appends entries (an array of objects,
	 * checked by store.c) in one transaction; hashes (may be NULL) gets
	 * the last one's hash. */
	int (*audit_append)(struct sl_store *s, const json_t *entries, char hash_out[SL_AUDIT_HASH_LEN + 1],
			    struct sl_err *err);
	int (*audit_list)(struct sl_store *s, const struct sl_audit_filter *f, json_t **out, struct sl_err *err);
	int (*audit_scan)(struct sl_store *s, sl_audit_row_fn fn, void *ud, struct sl_err *err);
	/* run_cancel and dlq_replay with an audit entry (checked, not NULL) in
	 * the same transaction; NULL: store.c does the two one after the other. */
	int (*run_cancel_audited)(struct sl_store *s, const char *run_id, const json_t *audit, struct sl_err *err);
	int (*dlq_replay_audited)(struct sl_store *s, const char *dlq_id, const json_t *input, const char *new_digest,
				  int new_version, const json_t *audit, char run_id_out[SL_ID_MAX], struct sl_err *err);
	/* API keys and kill switches (src/gov/auth.h); audit may be NULL, else
	 * appended in the same transaction. */
	int (*key_put)(struct sl_store *s, const struct sl_api_key *k, const json_t *audit, struct sl_err *err);
	int (*key_get)(struct sl_store *s, const char *id, struct sl_api_key *out, struct sl_err *err);
	int (*key_list)(struct sl_store *s, json_t **out, struct sl_err *err);
	int (*key_revoke)(struct sl_store *s, const char *id, int64_t now, const json_t *audit, struct sl_err *err);
	int (*pause_set)(struct sl_store *s, const char *kind, const char *name, bool paused, const char *by,
			 const json_t *audit, bool *changed, struct sl_err *err);
	int (*pause_list)(struct sl_store *s, json_t **out, struct sl_err *err);
	int (*task_park)(struct sl_store *s, const struct sl_task *t, const char *key, int64_t due_at,
			 struct sl_err *err);
	/* ai_costs with a tenant (NULL: all); NULL slot: ai_costs, unfiltered
	 * only. */
	int (*ai_costs_tenant)(struct sl_store *s, const char *group_by, int64_t since_ms, const char *tenant,
			       json_t **out, struct sl_err *err);
	/* approvals (store.h); approval_decide gets a checked status and
	 * decision, and an audit entry or NULL */
	int (*approvals_list)(struct sl_store *s, const struct sl_approval_filter *f, json_t **out, struct sl_err *err);
	int (*approval_get)(struct sl_store *s, const char *id, json_t **out, struct sl_err *err);
	int (*approval_decide)(struct sl_store *s, const char *id, const char *status, const json_t *decision,
			       const json_t *audit, json_t **out, struct sl_err *err);
	/* trigger state (a schedule's last slot, a sync's cursor) */
	int (*trigger_state_get)(struct sl_store *s, const char *name, json_t **out, struct sl_err *err);
	int (*trigger_state_put)(struct sl_store *s, const char *name, const json_t *state, struct sl_err *err);
	/* New members are appended here. */
};

extern const struct sl_store_ops sl_store_sqlite_ops;
extern const struct sl_store_ops sl_store_postgres_ops;

/* Page sizes of the list functions: the default and the most one page holds. */
#define SL_STORE_LIST_DEFAULT 50
#define SL_STORE_LIST_MAX 1000

/* ---- helpers shared by the implementations (store.c) ---------------------- */
const char *sl_store__phase_name(enum sl_phase p);            /* "forward", "compensate" */
int sl_store__phase_parse(const char *name);                  /* -1 when unknown */
int sl_store__step_status_parse(const char *name);            /* -1 when unknown */
/* The list's page size: 0 means the default; capped at the maximum. */
size_t sl_store__limit(size_t limit);
/* Checks one commit of a batch (a bad one is refused alone, so that one
 * malformed commit never blocks the batches it lands in). 0 or SL_EINVAL. */
int sl_store__commit_check(const struct sl_commit *c, struct sl_err *err);
/* Checks a run to create (run_create and spawns). 0 or SL_EINVAL. */
int sl_store__run_new_check(const struct sl_run_new *r, struct sl_err *err);
/* Seals an audit entry for appending after the head (head_seq, head_hash;
 * 0 and SL_AUDIT_GENESIS for an empty log): sets "seq", "at" (now unless
 * the entry has one) and, when run_id is not NULL, "run_id"; returns the
 * canonical text (owned) and its hash. NULL on OOM. */
char *sl_store__audit_seal(const json_t *entry, int64_t head_seq, const char *head_hash, int64_t now,
			   const char *run_id, char hash[SL_AUDIT_HASH_LEN + 1]);
/* An audit entry is an object with a non-empty string "action". */
bool sl_store__audit_entry_ok(const json_t *entry);
/* The copies of a sealed entry kept in columns for filtering, as its text
 * has them (sluice audit verify compares): every store writes the same. The
 * strings are borrowed from entry and run_id. */
struct sl_audit_cols {
	int64_t at;
	const char *tenant, *action, *run_id;
};
void sl_store__audit_cols(const json_t *entry, const char *run_id, int64_t now, struct sl_audit_cols *out);
/* Copies an id into a caller's SL_ID_MAX buffer, always terminated. */
void sl_store__id_copy(char dst[SL_ID_MAX], const char *src);

/* An API key row as its list document (no hash). Owned. */
json_t *sl_store__key_doc(const struct sl_api_key *k);
/* ---- fair claiming (store.c; docs/internals/store.md "Fair claiming") ------
 * Each tenant has a virtual time, `pass` (table tenant_share): what it was
 * served, in tasks divided by its weight. A claim's batch goes slot by
 * slot to the tenant whose next slot ends first (pass + k / weight), so
 * over time tenants are served in proportion to their weights. A tenant
 * whose pass trails the leader by more than SL_FAIR_LAG (it was idle) is
 * lifted to leader - SL_FAIR_LAG: a returning tenant is served at once but
 * banks no credit from its idle time. */
#define SL_FAIR_LAG 1.0
/* The weight and max_concurrency of tenant: its share, else 1 and 0. */
void sl_store__fair_share(const struct sl_fair *f, const char *tenant, double *weight, int *max_concurrency);
/* One tenant with due work in a claim. In: pass (0 when none stored),
 * weight, cap (due tasks, at most the batch and its free concurrency).
 * Out: eff (its pass lifted as above), n (the slots it got). */
struct sl_fair_cand {
	double pass, weight, eff;
	size_t cap, n;
};
/* Splits max slots among c[0..nc) (in tenant order: ties go to the first);
 * order (max entries, may be NULL) receives the tenant index of each slot
 * in claim order. Returns the slots given. */
size_t sl_store__fair_split(struct sl_fair_cand *c, size_t nc, size_t max, size_t *order);

/* One group of sl_store_ai_costs (store.c), built the same for every store. */
json_t *store_cost_group(const char *key, int64_t calls, int64_t tokens_in, int64_t tokens_out, double cost_usd,
			 int64_t cache_hits, int64_t runs_completed);

/* ---- approvals: both stores select these columns, in this order, and
 * build documents with the shared helpers below. */
#define APR_COLS                                                                                      \
	"id, run_id, step_id, tenant, workflow, kind, status, reviewers, escalate_to, escalated, due_at, " \
	"timeout_ms, on_timeout, input, evidence, proposed, reason, decision, created_at, decided_at"
enum {
	APR_ID, APR_RUN, APR_STEP, APR_TENANT, APR_WORKFLOW, APR_KIND, APR_STATUS, APR_REVIEWERS,
	APR_ESCALATE_TO, APR_ESCALATED, APR_DUE_AT, APR_TIMEOUT_MS, APR_ON_TIMEOUT, APR_INPUT, APR_EVIDENCE,
	APR_PROPOSED, APR_REASON, APR_DECISION, APR_CREATED, APR_DECIDED, APR__COUNT
};
/* The document of one row, from its columns as text (NULL: SQL NULL). */
json_t *sl_store__approval_doc(const char *const cols[APR__COUNT]);
/* Adds an approval document to a run's context["_approvals"][step_id] (a
 * later one of the same step replaces an earlier one). */
void sl_store__approval_ctx(json_t *context, const json_t *doc);
/* An approval status the store accepts. */
bool sl_store__approval_status_ok(const char *status);

#endif
