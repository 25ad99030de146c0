/*
 * gov/policy.h: policy rules and autonomy levels (DESIGN.md §7,
 * docs/reference/policy.md).
 *
 * policies.yaml's `rules:` say what a subject (a principal, a role, a
 * workflow, or an AI step acting for one) may read, suggest, write or
 * trigger, per connector action and per field, with a jq condition over the
 * proposed action. sl_policy_eval collects every matching rule and decides
 * by precedence: deny wins, then require_approval, then allow, then the
 * verb's default (allow unless `default:` says otherwise).
 *
 * This file parses only `rules:` and `default:` of policies.yaml; the
 * other top-level keys (tenants, principals, ...) belong to other parsers
 * and are left alone.
 *
 * Thread safety: a loaded policy is read-only; sl_policy_eval may run on
 * many threads at once (jq expressions keep their own pools).
 */
#ifndef SL_GOV_POLICY_H
#define SL_GOV_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "connector/connector.h" /* struct sl_conf_ctx */
#include "util/util.h"

/* ---- autonomy levels ------------------------------------------------------------ */
/* Ordered: a lower level may do less. assistant, recommender and drafting
 * may not write without an approval; supervised may call only allowlisted
 * actions; autonomous is bounded by policy only. */
enum sl_autonomy {
	SL_AUTONOMY_ASSISTANT,
	SL_AUTONOMY_RECOMMENDER,
	SL_AUTONOMY_DRAFTING,
	SL_AUTONOMY_SUPERVISED,
	SL_AUTONOMY_AUTONOMOUS,
	SL_AUTONOMY__COUNT
};
#define SL_AUTONOMY_DEFAULT SL_AUTONOMY_RECOMMENDER
const char *sl_autonomy_name(enum sl_autonomy a);
int sl_autonomy_parse(const char *name); /* -1 when unknown */
/* One level lower (assistant stays assistant): what a demoted step acts as. */
enum sl_autonomy sl_autonomy_demote(enum sl_autonomy a);

/* ---- rules ------------------------------------------------------------------------ */
enum sl_policy_verb { SL_VERB_READ, SL_VERB_SUGGEST, SL_VERB_WRITE, SL_VERB_TRIGGER, SL_VERB__COUNT };
const char *sl_policy_verb_name(enum sl_policy_verb v);
int sl_policy_verb_parse(const char *name); /* -1 when unknown */

enum sl_policy_decision { SL_DECIDE_ALLOW, SL_DECIDE_REQUIRE_APPROVAL, SL_DECIDE_DENY };
const char *sl_policy_decision_name(enum sl_policy_decision d); /* "allow", "require_approval", "deny" */

struct sl_policy_rule {
	char *id;
	char **who;   /* subject patterns (NULL-terminated); see sl_policy_subject_match */
	unsigned verbs; /* bit (1 << verb) */
	char **on;    /* target globs (NULL-terminated): CONNECTOR.ACTION (read/write), workflow (trigger),
		       * ai task (suggest); {"*"} when absent */
	char **fields; /* field names (NULL-terminated) or NULL: the whole action */
	struct sl_expr *when; /* jq over the proposed action, or NULL */
	enum sl_policy_decision decision;
	json_t *reviewers; /* require_approval: array of strings (owned), else NULL */
	int line, col;     /* where the rule starts (for sluice check) */
};

struct sl_policy {
	struct sl_policy_rule *rules;
	size_t nrules;
	enum sl_policy_decision defaults[SL_VERB__COUNT]; /* when no rule matches; allow unless set */
	char *file; /* "policies.yaml" as shown in messages */
};

/* Parses the policy part of policies.yaml's document (NULL: no file, an
 * empty policy). Problems go through ctx (FILE:LINE:COL). Always returns a
 * policy (owned, sl_policy_free); check ctx->nerrors. */
struct sl_policy *sl_policy_parse(const json_t *doc, struct sl_conf_ctx *ctx);
void sl_policy_free(struct sl_policy *p);

/* ---- evaluation -------------------------------------------------------------------- */
/* Who asks. A subject matches a `who:` pattern when any of its names does:
 * names are "user:NAME", "service:NAME", "workflow:NAME", "agent:WORKFLOW/STEP"
 * and "role:ROLE"; patterns are the same with fnmatch globs ("agent:*"),
 * "*" for anyone, and "agent" alone for any AI step. */
struct sl_policy_subject {
	const char *const *names; /* NULL-terminated */
};
bool sl_policy_subject_match(const char *pattern, const struct sl_policy_subject *s);

/* What is proposed. */
struct sl_policy_query {
	struct sl_policy_subject subject;
	enum sl_policy_verb verb;
	const char *target;   /* "helpdesk.tickets.create", a workflow name or an ai task */
	const json_t *fields; /* object whose top-level keys are the fields touched (the input), or NULL */
	const json_t *doc;    /* what `when:` reads: {subject, verb, action, effect, input, workflow, step,
			       * tenant, run_id}; borrowed, may be NULL */
};

/* The decision and why. rule is borrowed from the policy (NULL: the
 * default decided). Every rule that matched is in matched (owned array of
 * {rule, decision}), which becomes the evidence of an approval. */
struct sl_policy_result {
	enum sl_policy_decision decision;
	const char *rule;       /* the deciding rule's id, or "default" */
	json_t *reviewers;      /* require_approval: the reviewers of every such rule (owned), else NULL */
	json_t *matched;        /* owned */
	char error[256];        /* a `when:` that failed to evaluate (it counts as matching: fail closed) */
};
/* Evaluates q. A rule matches when its who, verb, on, fields and when all
 * match; a rule with fields matches only a query touching one of them.
 * Returns the decision (also in res). res must be freed with
 * sl_policy_result_free. A NULL policy allows. */
enum sl_policy_decision sl_policy_eval(const struct sl_policy *p, const struct sl_policy_query *q,
				       struct sl_policy_result *res);
void sl_policy_result_free(struct sl_policy_result *res);

/* The field names that `read` rules deny to the subject on target (NULL:
 * any target): what an AI step must not see. Returns an owned array of
 * strings (empty when none). */
json_t *sl_policy_denied_fields(const struct sl_policy *p, const struct sl_policy_subject *s, const char *target);
/* Removes every key named in fields (array of strings) from v, at any
 * depth, in place. Returns how many it removed. */
size_t sl_policy_strip_fields(json_t *v, const json_t *fields);

/* ---- sluice check ------------------------------------------------------------------- */
/* What a project offers rules to match (all borrowed, NULL-terminated). */
struct sl_policy_universe {
	const char *const *actions;   /* "CONNECTOR.ACTION" */
	const char *const *workflows; /* workflow names */
	const char *const *agents;    /* "WORKFLOW/STEP" of every ai step */
	const char *const *fields;    /* every property name of every contract */
};
/* Calls warn once per rule (or rule part) that can match nothing in u:
 * no action, workflow, agent or field it could apply to. */
void sl_policy_check_unused(const struct sl_policy *p, const struct sl_policy_universe *u,
			    void (*warn)(void *ud, int line, int col, const char *msg), void *ud);

#endif
