/*
 * audit.c: building audit entries and verifying the chain.
 *
 * Verification trusts nothing in a row: it hashes the stored text itself
 * (never a re-serialisation of it), so what is checked is exactly the
 * bytes that were chained, and a verifier in another language needs only
 * SHA-256 and the rule in docs/internals/gov.md.
 */
#include "gov/audit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const actor_names[SL_ACTOR__COUNT] = {
	[SL_ACTOR_SYSTEM] = "system",
	[SL_ACTOR_USER] = "user",
	[SL_ACTOR_SERVICE] = "service",
	[SL_ACTOR_AGENT] = "agent",
};

const char *sl_actor_kind_name(enum sl_actor_kind k)
{
	return (unsigned)k < SL_ACTOR__COUNT ? actor_names[k] : "unknown";
}

int sl_actor_kind_parse(const char *name)
{
	for (int i = 0; name && i < SL_ACTOR__COUNT; i++)
		if (strcmp(actor_names[i], name) == 0)
			return i;
	return -1;
}

static void put_str(json_t *o, const char *key, const char *v)
{
	if (v)
		json_object_set_new(o, key, json_string(v));
}

json_t *sl_audit_entry_json(const struct sl_audit_entry *e)
{
	json_t *o = json_object();
	if (e->at > 0)
		json_object_set_new(o, "at", json_integer(e->at));
	put_str(o, "tenant", e->tenant ? e->tenant : "default");
	const char *aid = e->actor.id ? e->actor.id : e->actor.kind == SL_ACTOR_SYSTEM ? "sluice" : "unknown";
	json_object_set_new(o, "actor", json_pack("{s:s, s:s}", "kind", sl_actor_kind_name(e->actor.kind), "id", aid));
	put_str(o, "action", e->action);
	if (e->target.kind || e->target.id) {
		json_t *t = json_object();
		put_str(t, "kind", e->target.kind);
		put_str(t, "id", e->target.id);
		json_object_set_new(o, "target", t);
	}
	put_str(o, "run_id", e->run_id);
	put_str(o, "step_id", e->step_id);
	put_str(o, "correlation_id", e->correlation_id);
	put_str(o, "model", e->model);
	put_str(o, "prompt_hash", e->prompt_hash);
	put_str(o, "approval_id", e->approval_id);
	if (e->policy.rule || e->policy.decision) {
		json_t *p = json_object();
		put_str(p, "rule", e->policy.rule);
		put_str(p, "decision", e->policy.decision);
		json_object_set_new(o, "policy", p);
	}
	if (e->effect)
		json_object_set_new(o, "effect", json_deep_copy(e->effect));
	if (e->detail)
		json_object_set_new(o, "detail", json_deep_copy(e->detail));
	return o;
}

int sl_audit_append(struct sl_store *s, const struct sl_audit_entry *e, char hash_out[SL_AUDIT_HASH_LEN + 1],
		    struct sl_err *err)
{
	if (!e || !e->action || !*e->action)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "audit: an entry needs an action");
	json_t *j = sl_audit_entry_json(e);
	int rc = sl_store_audit_append(s, j, hash_out, err);
	json_decref(j);
	return rc;
}

/* ---- verification ---------------------------------------------------------------- */

struct verify_ctx {
	struct sl_audit_report *rep;
	const char *anchor;
	char prev[SL_AUDIT_HASH_LEN + 1];
};

/* Marks row seq bad and stops the scan. */
__attribute__((format(printf, 3, 4))) static int bad(struct verify_ctx *v, int64_t seq, const char *fmt, ...)
{
	v->rep->intact = false;
	v->rep->bad_seq = seq;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->rep->reason, sizeof v->rep->reason, fmt, ap);
	va_end(ap);
	return 1;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool is_hash(const char *h)
{
	if (!h || strlen(h) != SL_AUDIT_HASH_LEN)
		return false;
	for (const char *p = h; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* The text's own fields against the row's columns: a column edited to
 * mislead a filtered list is caught as well as an edited text. */
static int check_text(struct verify_ctx *v, const struct sl_audit_row *r)
{
	json_error_t je;
	json_t *e = json_loadb(r->text, r->text_len, 0, &je);
	if (!json_is_object(e)) {
		json_decref(e);
		return bad(v, r->seq, "entry %lld: the text is not a JSON object", (long long)r->seq);
	}
	int stop = 0;
	json_t *seq = json_object_get(e, "seq"), *at = json_object_get(e, "at");
	const char *tenant = json_string_value(json_object_get(e, "tenant"));
	const char *run_id = json_string_value(json_object_get(e, "run_id"));
	if (!json_is_integer(seq) || json_integer_value(seq) != r->seq)
		stop = bad(v, r->seq, "entry %lld: the text says seq %lld", (long long)r->seq,
			   json_is_integer(seq) ? (long long)json_integer_value(seq) : -1LL);
	else if (!str_eq(json_string_value(json_object_get(e, "action")), r->action))
		stop = bad(v, r->seq, "entry %lld: the action column does not match the text", (long long)r->seq);
	else if (!str_eq(tenant ? tenant : "default", r->tenant))
		stop = bad(v, r->seq, "entry %lld: the tenant column does not match the text", (long long)r->seq);
	else if (!str_eq(run_id, r->run_id))
		stop = bad(v, r->seq, "entry %lld: the run_id column does not match the text", (long long)r->seq);
	else if (!json_is_integer(at) || json_integer_value(at) != r->at)
		stop = bad(v, r->seq, "entry %lld: the time column does not match the text", (long long)r->seq);
	json_decref(e);
	return stop;
}

static int verify_row(const struct sl_audit_row *r, void *ud)
{
	struct verify_ctx *v = ud;
	struct sl_audit_report *rep = v->rep;
	int64_t want = rep->head_seq + 1;
	if (r->seq != want)
		return r->seq > want ? bad(v, want, "entry %lld is missing (the next stored is %lld)", (long long)want,
					   (long long)r->seq)
				     : bad(v, r->seq, "entry %lld is out of order", (long long)r->seq);
	if (!r->text || !is_hash(r->hash) || !is_hash(r->prev_hash))
		return bad(v, r->seq, "entry %lld: a missing text or a malformed hash", (long long)r->seq);
	if (strcmp(r->prev_hash, v->prev) != 0)
		return bad(v, r->seq, "entry %lld: prev_hash is not the hash of entry %lld", (long long)r->seq,
			   (long long)(r->seq - 1));
	char h[SL_AUDIT_HASH_LEN + 1];
	sl_store_audit_hash(r->prev_hash, r->text, r->text_len, h);
	if (strcmp(h, r->hash) != 0)
		return bad(v, r->seq, "entry %lld: the hash does not match its text (edited)", (long long)r->seq);
	if (check_text(v, r))
		return 1;
	rep->entries++;
	rep->head_seq = r->seq;
	memcpy(rep->head_hash, h, sizeof h);
	memcpy(v->prev, h, sizeof h);
	if (v->anchor && !rep->anchor_found && strcmp(v->anchor, h) == 0) {
		rep->anchor_found = true;
		rep->anchor_seq = r->seq;
	}
	return 0;
}

int sl_audit_verify(struct sl_store *s, const char *anchored_head, struct sl_audit_report *rep)
{
	memset(rep, 0, sizeof *rep);
	rep->intact = true;
	struct verify_ctx v = {.rep = rep, .anchor = anchored_head && *anchored_head ? anchored_head : NULL};
	memcpy(v.prev, SL_AUDIT_GENESIS, sizeof v.prev);
	memcpy(rep->head_hash, SL_AUDIT_GENESIS, sizeof rep->head_hash);
	struct sl_err err;
	sl_err_clear(&err);
	int rc = sl_store_audit_scan(s, verify_row, &v, &err);
	if (rc < 0) {
		rep->intact = false;
		snprintf(rep->reason, sizeof rep->reason, "%s", err.msg);
		return rc;
	}
	if (!rep->intact)
		return 0;
	if (v.anchor && !is_hash(v.anchor)) {
		rep->intact = false;
		snprintf(rep->reason, sizeof rep->reason, "the anchored head is not a SHA-256 hash (64 hex chars)");
	} else if (v.anchor && !rep->anchor_found) {
		rep->intact = false;
		rep->bad_seq = rep->head_seq + 1;
		snprintf(rep->reason, sizeof rep->reason,
			 "the anchored head %.12s... is not in the log: truncated after entry %lld, or rewritten",
			 v.anchor, (long long)rep->head_seq);
	}
	return 0;
}
