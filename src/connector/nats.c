/*
 * nats.c: the `nats` connector type: a NATS JetStream stream read through a
 * durable pull consumer (a trigger source) and written by the built-in
 * action `publish` (an emit target), with cnats.
 *
 * Reading: js_PullSubscribe binds each subscription to the durable consumer
 * (created with explicit acks and ack_wait on first use; several processes
 * and threads share it), natsSubscription_Fetch pulls a batch, and
 * natsMsg_Ack is sent (then flushed) only after the caller committed what
 * the batch started. A message not acknowledged within ack_wait (its
 * consumer died) is delivered again by the server, with NumDelivered > 1.
 * Its identity, "nats:STREAM:SEQ" (the stream sequence), is the same on
 * every delivery.
 *
 * Writing: js_Publish with the idempotency key as Nats-Msg-Id, so the
 * server drops a second publish of the key within the stream's duplicate
 * window (dedupe_window, set when this connector creates the stream).
 *
 * The stream is created when missing (create_stream, default true) with the
 * subject as its only subject.
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NATS_DEFAULT_TIMEOUT_MS 5000
#define NATS_DEFAULT_ACK_WAIT_MS 30000
#define NATS_DEFAULT_DEDUPE_MS (2LL * 60 * 1000)
#define NS_PER_MS 1000000LL

struct nats_conn {
	const char *name;
	char *url, *user;
	char *password, *token; /* secrets, owned (sl_secret_free) */
	char *stream, *subject, *durable;
	bool create_stream;
	int64_t timeout_ms, ack_wait_ms, dedupe_ms;

	pthread_mutex_t mu; /* guards the publishing connection */
	natsConnection *pub_nc;
	jsCtx *pub_js;
};

struct nats_sub {
	struct nats_conn *nc_conf;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	char *durable;
};

static const struct sl_conf_key nats_keys[] = {
	{"url", SL_CONF_STRING, true, "nats://HOST[:PORT] (no credentials here: see user, password, token)"},
	{"user", SL_CONF_STRING, false, "user name, with password"},
	{"password", SL_CONF_STRING, false, "secret reference (env:NAME or file:PATH)"},
	{"token", SL_CONF_STRING, false, "secret reference for token authentication"},
	{"stream", SL_CONF_STRING, true, "the JetStream stream"},
	{"subject", SL_CONF_STRING, true, "the subject read from and published to"},
	{"durable", SL_CONF_STRING, false, "durable consumer name (default sluice)"},
	{"create_stream", SL_CONF_BOOL, false, "create the stream when it is missing (default true)"},
	{"ack_wait", SL_CONF_DURATION, false, "a message not acknowledged this long is delivered again (default 30s)"},
	{"dedupe_window", SL_CONF_DURATION, false, "duplicate window of a stream this connector creates (default 2m)"},
	{"timeout", SL_CONF_DURATION, false, "connect and request timeout (default 5s)"},
	{NULL, 0, false, NULL},
};

static const char *const nats_builtins[] = {SL_STREAM_PUBLISH_ACTION, "write", NULL};

/* ---- errors ---------------------------------------------------------------------- */

static int nats_fail(struct sl_err *err, const char *what, natsStatus s, jsErrCode jerr)
{
	const char *text = nats_GetLastError(NULL);
	enum sl_class cls = SL_CLASS_TRANSIENT;
	if (s == NATS_NOT_PERMITTED || (text && strstr(text, "Authorization")))
		cls = SL_CLASS_AUTH;
	else if (s == NATS_INVALID_ARG || s == NATS_NOT_FOUND)
		cls = SL_CLASS_PERMANENT;
	sl_err_set(err, SL_EIO, cls, "nats %s: %s%s%s", what, natsStatus_GetText(s), text && *text ? ": " : "",
		   text ? text : "");
	if (jerr)
		sl_err_prefix(err, "jetstream error %d", (int)jerr);
	return SL_EIO;
}

/* ---- connections -------------------------------------------------------------------- */

static int nats_connect(struct nats_conn *cf, natsConnection **nc, jsCtx **js, struct sl_err *err)
{
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, cf->url);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, cf->timeout_ms);
	if (s == NATS_OK && cf->user)
		s = natsOptions_SetUserInfo(o, cf->user, cf->password);
	if (s == NATS_OK && cf->token)
		s = natsOptions_SetToken(o, cf->token);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK)
		return nats_fail(err, "connect", s, 0);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = cf->timeout_ms;
	s = natsConnection_JetStream(js, *nc, &jo);
	if (s != NATS_OK) {
		natsConnection_Destroy(*nc);
		*nc = NULL;
		return nats_fail(err, "jetstream", s, 0);
	}
	return 0;
}

/* Creates the stream when it is missing (and allowed to). */
static int ensure_stream(struct nats_conn *cf, jsCtx *js, struct sl_err *err)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, js, cf->stream, NULL, &jerr);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND || !cf->create_stream)
		return nats_fail(err, "stream info", s, jerr);
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	const char *subjects[] = {cf->subject};
	sc.Name = cf->stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Duplicates = cf->dedupe_ms * NS_PER_MS;
	s = js_AddStream(&si, js, &sc, NULL, &jerr);
	if (s != NATS_OK && jerr != JSStreamNameExistErr)
		return nats_fail(err, "create stream", s, jerr);
	jsStreamInfo_Destroy(si);
	return 0;
}

/* ---- config ------------------------------------------------------------------------ */

static int nats_init(struct sl_connector *c, struct sl_conf_ctx *ctx)
{
	int before = ctx->nerrors;
	const json_t *doc = c->config;
	struct nats_conn *cf = sl_xcalloc(1, sizeof *cf);
	c->priv = cf;
	cf->name = c->name;
	pthread_mutex_init(&cf->mu, NULL);
	const char *url = sl_conf_str(doc, "url", "");
	struct sl_conn_url u;
	if (sl_conn__url_parse(url, &u) || (strcmp(u.scheme, "nats") && strcmp(u.scheme, "tls"))) {
		if (u.scheme)
			sl_conn__url_free(&u);
		if (json_is_string(json_object_get(doc, "url")))
			sl_conf_error(ctx, "/url", "url must be nats://HOST[:PORT]");
	} else {
		if (u.user || u.password)
			/* Not echoed: the URL holds a credential. */
			sl_conf_error(ctx, "/url", "url must not hold credentials: give user and password: env:NAME");
		sl_conn__url_free(&u);
	}
	cf->url = sl_strdup(url);
	cf->user = sl_strdup(sl_conf_str(doc, "user", NULL));
	sl_conf_secret(ctx, doc, "", "password", false, &cf->password);
	sl_conf_secret(ctx, doc, "", "token", false, &cf->token);
	if (json_object_get(doc, "password") && !cf->user)
		sl_conf_error(ctx, "/password", "password needs user");
	cf->stream = sl_strdup(sl_conf_str(doc, "stream", ""));
	cf->subject = sl_strdup(sl_conf_str(doc, "subject", ""));
	cf->durable = sl_strdup(sl_conf_str(doc, "durable", "sluice"));
	if (json_is_string(json_object_get(doc, "stream")) && (!cf->stream[0] || strpbrk(cf->stream, " .*>")))
		sl_conf_error(ctx, "/stream", "stream \"%s\" must be a name without spaces, '.', '*' or '>'", cf->stream);
	if (json_is_string(json_object_get(doc, "subject")) && (!cf->subject[0] || strpbrk(cf->subject, " *>")))
		sl_conf_error(ctx, "/subject", "subject \"%s\" must be one subject, without spaces or wildcards",
			      cf->subject);
	if (!cf->durable[0] || strpbrk(cf->durable, " .*>"))
		sl_conf_error(ctx, "/durable", "durable \"%s\" must be a name without spaces, '.', '*' or '>'",
			      cf->durable);
	cf->create_stream = sl_conf_bool(doc, "create_stream", true);
	cf->timeout_ms = sl_conf_duration(ctx, doc, "", "timeout", NATS_DEFAULT_TIMEOUT_MS);
	cf->ack_wait_ms = sl_conf_duration(ctx, doc, "", "ack_wait", NATS_DEFAULT_ACK_WAIT_MS);
	cf->dedupe_ms = sl_conf_duration(ctx, doc, "", "dedupe_window", NATS_DEFAULT_DEDUPE_MS);
	return ctx->nerrors - before;
}

static int nats_action_init(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
			    const char *pointer)
{
	if (strcmp(a->name, SL_STREAM_PUBLISH_ACTION) != 0) {
		sl_conf_error(ctx, pointer, "a nats connector has only the action publish, not \"%s\"", a->name);
		return 1;
	}
	return 0;
}

static void nats_close(struct sl_connector *c)
{
	struct nats_conn *cf = c->priv;
	if (!cf)
		return;
	jsCtx_Destroy(cf->pub_js);
	natsConnection_Destroy(cf->pub_nc);
	pthread_mutex_destroy(&cf->mu);
	free(cf->url);
	free(cf->user);
	sl_secret_free(cf->password);
	sl_secret_free(cf->token);
	free(cf->stream);
	free(cf->subject);
	free(cf->durable);
	free(cf);
	c->priv = NULL;
}

/* ---- publish -------------------------------------------------------------------------- */

static int nats_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		     struct sl_call_result *res, struct sl_err *err)
{
	struct nats_conn *cf = c->priv;
	pthread_mutex_lock(&cf->mu);
	int rc = 0;
	if (!cf->pub_nc) {
		rc = nats_connect(cf, &cf->pub_nc, &cf->pub_js, err);
		if (!rc && (rc = ensure_stream(cf, cf->pub_js, err))) {
			jsCtx_Destroy(cf->pub_js);
			natsConnection_Destroy(cf->pub_nc);
			cf->pub_js = NULL;
			cf->pub_nc = NULL;
		}
	}
	pthread_mutex_unlock(&cf->mu);
	if (rc)
		return rc;
	size_t len;
	char *body = sl_conn__publish_body(call, &len);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = call->idempotency_key; /* the server drops a repeat within its duplicate window */
	if (call->timeout_ms > 0)
		po.MaxWait = call->timeout_ms;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(&pa, cf->pub_js, cf->subject, body, (int)len, &po, &jerr);
	free(body);
	if (s != NATS_OK)
		return nats_fail(err, "publish", s, jerr);
	res->output = json_pack("{s:s, s:I, s:b}", "stream", pa->Stream ? pa->Stream : cf->stream, "seq",
				(json_int_t)pa->Sequence, "duplicate", pa->Duplicate);
	jsPubAck_Destroy(pa);
	return 0;
}

/* ---- subscriptions ---------------------------------------------------------------------- */

static void sub_drop(struct nats_sub *s)
{
	natsSubscription_Destroy(s->sub);
	jsCtx_Destroy(s->js);
	natsConnection_Destroy(s->nc);
	s->sub = NULL;
	s->js = NULL;
	s->nc = NULL;
}

static int sub_connect(struct nats_sub *s, struct sl_err *err)
{
	if (s->sub)
		return 0;
	struct nats_conn *cf = s->nc_conf;
	int rc = nats_connect(cf, &s->nc, &s->js, err);
	if (!rc)
		rc = ensure_stream(cf, s->js, err);
	if (!rc) {
		jsSubOptions so;
		jsSubOptions_Init(&so);
		so.Stream = cf->stream;
		so.Config.Durable = s->durable;
		so.Config.AckPolicy = js_AckExplicit;
		so.Config.AckWait = cf->ack_wait_ms * NS_PER_MS;
		so.Config.DeliverPolicy = js_DeliverAll;
		jsErrCode jerr = 0;
		natsStatus st = js_PullSubscribe(&s->sub, s->js, cf->subject, s->durable, NULL, &so, &jerr);
		if (st != NATS_OK)
			rc = nats_fail(err, "pull subscribe", st, jerr);
	}
	if (rc)
		sub_drop(s);
	return rc;
}

static int nats_sub_open(struct sl_connector *c, const struct sl_stream_sub_opts *o, void **out, struct sl_err *err)
{
	struct nats_sub *s = sl_xcalloc(1, sizeof *s);
	s->nc_conf = c->priv;
	s->durable = sl_strdup(o->group ? o->group : s->nc_conf->durable);
	*out = s;
	return sub_connect(s, err);
}

static void nats_sub_close(void *sub)
{
	struct nats_sub *s = sub;
	sub_drop(s);
	free(s->durable);
	free(s);
}

static int nats_fetch(void *sub, size_t max, int64_t wait_ms, struct sl_stream_msg *out, size_t *n,
		      struct sl_err *err)
{
	struct nats_sub *s = sub;
	int rc = sub_connect(s, err);
	if (rc)
		return rc;
	natsMsgList list = {0};
	jsErrCode jerr = 0;
	natsStatus st = natsSubscription_Fetch(&list, s->sub, (int)max, wait_ms > 0 ? wait_ms : 1, &jerr);
	if (st == NATS_TIMEOUT)
		return 0; /* nothing came */
	if (st != NATS_OK) {
		rc = nats_fail(err, "fetch", st, jerr);
		if (st == NATS_CONNECTION_CLOSED || st == NATS_CONNECTION_DISCONNECTED || st == NATS_INVALID_SUBSCRIPTION)
			sub_drop(s);
		return rc;
	}
	for (int i = 0; i < list.Count && *n < max; i++) {
		natsMsg *m = list.Msgs[i];
		jsMsgMetaData *meta = NULL;
		if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
			natsMsg_Destroy(m); /* not a JetStream message: nothing to ack or key */
			list.Msgs[i] = NULL;
			continue;
		}
		struct sl_stream_msg *sm = &out[(*n)++];
		char seq[32];
		snprintf(seq, sizeof seq, "%llu", (unsigned long long)meta->Sequence.Stream);
		sm->identity = sl_stream_identity("nats", meta->Stream ? meta->Stream : s->nc_conf->stream, seq);
		sm->redelivered = meta->NumDelivered > 1;
		sm->data = sl_stream_body_json(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		sm->handle = m;
		list.Msgs[i] = NULL; /* ours now */
		jsMsgMetaData_Destroy(meta);
	}
	natsMsgList_Destroy(&list);
	return 0;
}

static int nats_ack(void *sub, struct sl_stream_msg *m, size_t n, struct sl_err *err)
{
	struct nats_sub *s = sub;
	for (size_t i = 0; i < n; i++) {
		natsStatus st = natsMsg_Ack(m[i].handle, NULL);
		if (st != NATS_OK)
			return nats_fail(err, "ack", st, 0);
	}
	/* The acks are sent, not confirmed: one lost to a crash costs a
	 * redelivery, which finds its run. */
	natsStatus st = s->nc ? natsConnection_FlushTimeout(s->nc, s->nc_conf->timeout_ms) : NATS_OK;
	return st == NATS_OK ? 0 : nats_fail(err, "flush acks", st, 0);
}

/* Messages of the durable consumer not yet acknowledged: not delivered
 * (num_pending) plus delivered and waiting for their ack. */
static int nats_lag(void *sub, int64_t *lag, struct sl_err *err)
{
	struct nats_sub *s = sub;
	int rc = sub_connect(s, err);
	if (rc)
		return rc;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus st = js_GetConsumerInfo(&ci, s->js, s->nc_conf->stream, s->durable, NULL, &jerr);
	if (st != NATS_OK)
		return nats_fail(err, "consumer info", st, jerr);
	*lag = (int64_t)ci->NumPending + ci->NumAckPending;
	jsConsumerInfo_Destroy(ci);
	return 0;
}

static void nats_msg_free(struct sl_stream_msg *m)
{
	natsMsg_Destroy(m->handle);
	m->handle = NULL;
}

static const struct sl_stream_ops nats_stream_ops = {
	.sub_open_fn = nats_sub_open,
	.fetch_fn = nats_fetch,
	.ack_fn = nats_ack,
	.lag_fn = nats_lag,
	.msg_free_fn = nats_msg_free,
	.sub_close_fn = nats_sub_close,
};

const struct sl_connector_type sl_conn__nats_type = {
	.name = "nats",
	.description = "a NATS JetStream stream: durable pull consumer trigger source (ack after commit) and publish target",
	.keys = nats_keys,
	.action_keys = NULL,
	.builtin_actions = nats_builtins,
	.init_fn = nats_init,
	.action_init_fn = nats_action_init,
	.call_fn = nats_call,
	.poll_fn = NULL,
	.action_free_fn = NULL,
	.close_fn = nats_close,
	.stream = &nats_stream_ops,
};
