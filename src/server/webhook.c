/*
 * webhook.c: durable webhooks (POST /hooks/PATH).
 *
 * Order of checks: the route, the signature (before the body is parsed, so
 * an unsigned sender costs no JSON work), the body against the trigger's
 * contract, then a run start keyed by the delivery id (scope
 * "webhook:PATH"), answered 202 only once committed. A repeated delivery id
 * is answered with the first run's id.
 *
 * Signatures: GitHub style `X-Hub-Signature-256: sha256=HEX` over the body;
 * Stripe style `Stripe-Signature: t=TS,v1=HEX` over "TS.BODY" with a 300 s
 * tolerance both ways. Either the current or the previous (rotation) secret
 * may match; comparisons are constant-time. Answers never say which part
 * was wrong beyond missing / invalid / timestamp outside tolerance.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "obs/obs.h"
#include "server/server_int.h"

#define HOOK_TOLERANCE_S 300
#define HOOK_SIG_HEX 64

int srv_hooks_init(struct sl_server *s, struct sl_err *err)
{
	struct sl_project *p = sl_engine_project(s->e);
	s->hooks = sl_xcalloc(p->nworkflows ? p->nworkflows : 1, sizeof *s->hooks);
	for (size_t i = 0; i < p->nworkflows; i++) {
		const struct sl_workflow *w = p->workflows[i];
		if (w->trigger.kind != SL_TRIGGER_WEBHOOK || !w->trigger.path)
			continue;
		struct srv_hook *h = &s->hooks[s->nhooks++];
		h->path = w->trigger.path;
		h->workflow = w->name;
		h->scope = sl_asprintf("webhook:%s", w->trigger.path);
		const char *ref = w->trigger.hmac_secret_ref;
		if (!ref)
			continue;
		int rc = sl_secret_resolve(ref, p->dir, &h->secret, err);
		if (rc) {
			sl_err_prefix(err, "workflow %s: webhook hmac_secret", w->name);
			return rc;
		}
		/* rotation: env:NAME may have a previous secret in NAME_PREVIOUS */
		if (sl_str_startswith(ref, "env:")) {
			char *name = sl_asprintf("%s_PREVIOUS", ref + 4);
			const char *prev = getenv(name);
			if (prev && *prev)
				h->secret_prev = sl_strdup(prev);
			free(name);
		}
	}
	return 0;
}

static void wipe_free(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

void srv_hooks_free(struct sl_server *s)
{
	for (size_t i = 0; i < s->nhooks; i++) {
		wipe_free(s->hooks[i].secret);
		wipe_free(s->hooks[i].secret_prev);
		free(s->hooks[i].scope);
	}
	free(s->hooks);
	s->hooks = NULL;
	s->nhooks = 0;
}

/* Lowercases a hex string of exactly HOOK_SIG_HEX chars into out. */
static bool hex_sig(const char *in, size_t n, char out[HOOK_SIG_HEX + 1])
{
	if (n != HOOK_SIG_HEX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)in[i]))
			return false;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[n] = '\0';
	return true;
}

/* Whether want (lowercase hex) is the HMAC of prefix+body under secret. */
static bool sig_ok(const char *secret, const char *prefix, const struct sl_buf *body, const char *want)
{
	if (!secret)
		return false;
	unsigned char mac[32];
	char hex[HOOK_SIG_HEX + 1];
	if (prefix) {
		struct sl_buf b;
		sl_buf_init(&b, SL_BUF_MAX_HTTP_BODY + 64);
		sl_buf_adds(&b, prefix);
		sl_buf_add(&b, body->p ? body->p : "", body->len);
		if (b.err) {
			sl_buf_free(&b);
			return false;
		}
		sl_hmac_sha256(secret, strlen(secret), sl_buf_str(&b), b.len, mac);
		sl_buf_free(&b);
	} else {
		sl_hmac_sha256(secret, strlen(secret), body->p ? body->p : "", body->len, mac);
	}
	sl_hex(mac, sizeof mac, hex);
	return sl_ct_equal(hex, want, HOOK_SIG_HEX);
}

enum sig_verdict { SIG_OK, SIG_MISSING, SIG_INVALID, SIG_STALE };

static enum sig_verdict check_github(const struct srv_hook *h, const char *hdr, const struct sl_buf *body)
{
	char want[HOOK_SIG_HEX + 1];
	if (!sl_str_startswith(hdr, "sha256=") || !hex_sig(hdr + 7, strlen(hdr + 7), want))
		return SIG_INVALID;
	bool a = sig_ok(h->secret, NULL, body, want);
	bool b = sig_ok(h->secret_prev, NULL, body, want);
	return a || b ? SIG_OK : SIG_INVALID;
}

static enum sig_verdict check_stripe(const struct srv_hook *h, const char *hdr, const struct sl_buf *body)
{
	char ts[32] = "";
	char sigs[4][HOOK_SIG_HEX + 1];
	int nsigs = 0;
	const char *p = hdr;
	while (*p) {
		size_t n = strcspn(p, ",");
		while (n && *p == ' ') {
			p++;
			n--;
		}
		if (n > 2 && strncmp(p, "t=", 2) == 0 && n - 2 < sizeof ts) {
			memcpy(ts, p + 2, n - 2);
			ts[n - 2] = '\0';
		} else if (n > 3 && strncmp(p, "v1=", 3) == 0 && nsigs < 4) {
			if (hex_sig(p + 3, n - 3, sigs[nsigs]))
				nsigs++;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	int64_t t;
	if (!ts[0] || sl_parse_i64(ts, &t) || nsigs == 0)
		return SIG_INVALID;
	int64_t now = sl_now_ms() / 1000;
	if (t < now - HOOK_TOLERANCE_S || t > now + HOOK_TOLERANCE_S)
		return SIG_STALE;
	char prefix[40];
	snprintf(prefix, sizeof prefix, "%s.", ts);
	bool ok = false;
	for (int i = 0; i < nsigs; i++) {
		/* no early exit: every candidate costs the same */
		ok |= sig_ok(h->secret, prefix, body, sigs[i]);
		ok |= sig_ok(h->secret_prev, prefix, body, sigs[i]);
	}
	return ok ? SIG_OK : SIG_INVALID;
}

static enum sig_verdict check_signature(struct srv_req *r, const struct srv_hook *h)
{
	const char *gh = srv_header(r, "X-Hub-Signature-256");
	if (gh)
		return check_github(h, gh, &r->body);
	const char *st = srv_header(r, "Stripe-Signature");
	if (st)
		return check_stripe(h, st, &r->body);
	return SIG_MISSING;
}

static void reject(struct srv_req *r, const struct srv_hook *h, int status, const char *reason, const char *detail)
{
	const char *l[] = {h->workflow, reason};
	sl_metric_add(SL_M_WEBHOOK_REJECTED, l, 1);
	srv_problem(r, status, detail);
}

void srv_webhook(struct sl_server *s, struct srv_req *r)
{
	const struct srv_hook *h = NULL;
	for (size_t i = 0; i < s->nhooks; i++)
		if (strcmp(s->hooks[i].path, r->url) == 0)
			h = &s->hooks[i];
	if (!h) {
		srv_problem(r, 404, "no webhook at this path");
		return;
	}
	if (h->secret) {
		switch (check_signature(r, h)) {
		case SIG_OK: break;
		case SIG_MISSING: reject(r, h, 401, "signature_missing", "signature missing"); return;
		case SIG_STALE: reject(r, h, 401, "signature_stale", "timestamp outside tolerance"); return;
		default: reject(r, h, 401, "signature_invalid", "signature invalid"); return;
		}
	}
	const struct sl_workflow *w = sl_project_workflow(sl_engine_project(s->e), h->workflow);
	if (!w) {
		srv_problem(r, 404, "no webhook at this path");
		return;
	}
	json_t *in = srv_body_input(r, w->trigger.contract);
	if (!in) {
		const char *l[] = {h->workflow, "contract"};
		sl_metric_add(SL_M_WEBHOOK_REJECTED, l, 1);
		return;
	}
	const char *delivery = srv_header(r, "X-GitHub-Delivery");
	if (!delivery)
		delivery = srv_header(r, "X-Delivery-Id");
	if (!delivery && srv_header(r, "Stripe-Signature"))
		delivery = json_string_value(json_object_get(in, "id"));
	if (delivery && (!*delivery || strlen(delivery) > 255))
		delivery = NULL;
	char *key = sl_strdup(delivery); /* may point into in, which is given away */
	srv_start_and_reply(s, r, w, in, h->scope, key, "webhook");
	free(key);
	if (r->status == 202 || r->status == 200) { /* durable: the run is committed */
		const char *l[] = {h->workflow};
		sl_metric_observe(SL_M_WEBHOOK_ACCEPT, l, (double)(sl_mono_us() - r->t0) / 1e6);
	}
}
