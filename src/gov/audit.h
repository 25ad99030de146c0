/*
 * gov: governance (DESIGN.md §7). This header is its public face; it starts
 * with the audit log, and principals, policies, approvals and kill switches
 * join it later.
 *
 * The audit log is append-only and hash-chained: each entry's hash covers
 * the previous entry's hash and the entry's canonical text, so changing,
 * removing, reordering or inserting an entry breaks the chain from there on
 * (sl_audit_verify finds the first break). Cutting the tail off leaves a
 * shorter valid chain: only a head hash kept elsewhere (sluice audit head)
 * shows it. The store writes the entries (sl_store_audit_append, or
 * sl_commit.audit with the step they describe); the chain format is in
 * docs/internals/gov.md.
 */
#ifndef SL_GOV_AUDIT_H
#define SL_GOV_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "util/util.h"

/* Who or what acted. system is 0, so a zeroed actor is the engine itself. */
enum sl_actor_kind { SL_ACTOR_SYSTEM, SL_ACTOR_USER, SL_ACTOR_SERVICE, SL_ACTOR_AGENT, SL_ACTOR__COUNT };
const char *sl_actor_kind_name(enum sl_actor_kind k); /* "system", "user", "service", "agent" */
int sl_actor_kind_parse(const char *name);            /* -1 when unknown */

struct sl_audit_actor {
	enum sl_actor_kind kind;
	const char *id; /* NULL: "sluice" for system, "unknown" otherwise */
};

/* One entry, as the caller describes it. Every string is borrowed and may
 * be NULL (then the key is left out); seq and the hash are the store's. */
struct sl_audit_entry {
	int64_t at;                   /* ms; 0: when it is appended */
	const char *tenant;           /* NULL: "default" */
	struct sl_audit_actor actor;
	const char *action;           /* required: "run.start", "run.cancel", "dlq.replay", "ai.call",
				       * "step.write", "approval.decide", "policy.deny", "pause", ... */
	struct {
		const char *kind, *id;  /* "run", "dlq", "connector", "workflow", ... */
	} target;
	const char *run_id, *step_id, *correlation_id;
	const char *model, *prompt_hash; /* ai steps */
	const char *approval_id;
	struct {
		const char *rule, *decision; /* "allow", "deny", "approve" */
	} policy;
	const json_t *effect;         /* the downstream effect: {connector, action, effect,
				       * idempotency_key, outcome, ...}; borrowed, may be NULL */
	const json_t *detail;         /* any other facts (an object); borrowed, may be NULL */
};

/* The entry as the JSON object the store chains. Returns owned (json_decref). */
json_t *sl_audit_entry_json(const struct sl_audit_entry *e);
/* Builds and appends e in its own transaction; hash_out (may be NULL)
 * receives its hash. */
int sl_audit_append(struct sl_store *s, const struct sl_audit_entry *e, char hash_out[SL_AUDIT_HASH_LEN + 1],
		    struct sl_err *err);

/* ---- verification ---------------------------------------------------------------- */
struct sl_audit_report {
	bool intact;             /* every check passed */
	int64_t entries;         /* rows read */
	int64_t head_seq;        /* the last row's seq (0: empty log) */
	char head_hash[SL_AUDIT_HASH_LEN + 1];
	bool anchor_found;       /* the anchored head was met in the chain */
	int64_t anchor_seq;
	int64_t bad_seq;         /* the first row that failed (0 when intact, or when only the anchor is missing) */
	char reason[256];        /* why, in words */
};
/* Reads the whole log (one snapshot) and checks, row by row: seq is 1, 2,
 * 3, ... with no gap; prev_hash is the previous row's hash (the genesis
 * hash for seq 1); hash is SHA-256(prev_hash "\n" text); the text is a JSON
 * object whose "seq" is the row's and whose action, tenant, run_id and at
 * agree with the row's columns. With anchored_head (a hash kept elsewhere;
 * NULL or "" for none), the log must also contain it: a log cut off before
 * it is reported as truncated. Stops at the first failure.
 * Returns 0 when the log was read (rep->intact says whether it is whole),
 * or a negative code when it could not be (rep->reason says why). */
int sl_audit_verify(struct sl_store *s, const char *anchored_head, struct sl_audit_report *rep);

#endif
