/*
 * redis_stream.c: the `redis_stream` connector type: a Redis Stream read
 * through a consumer group (a trigger source) and written by the built-in
 * action `publish` (an emit target), with hiredis.
 *
 * Reading: XGROUP CREATE ... MKSTREAM once (BUSYGROUP: it exists), then
 * XREADGROUP GROUP G CONSUMER COUNT N BLOCK MS STREAMS S >. An entry stays
 * in the group's pending list until XACK, which the caller sends only after
 * the run it started is committed. Entries a dead process left pending are
 * taken over with XAUTOCLAIM once they have been idle for claim_idle (by
 * the subscription opened with reclaim, at start and every reclaim_every),
 * and come back marked redelivered. Their identity, "redis:STREAM:ID", is the
 * same on every delivery.
 *
 * Writing: with an idempotency key, one Lua script sets a marker key
 * (SET NX PX dedupe_window) and adds the entry only when the marker was not
 * there, atomically, so a step re-run after a crash adds its entry once.
 * (On Redis Cluster the marker and the stream would need one hash slot;
 * this type is written for one Redis.)
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REDIS_DEFAULT_TIMEOUT_MS 5000
#define REDIS_DEFAULT_CLAIM_IDLE_MS 30000
#define REDIS_DEFAULT_RECLAIM_EVERY_MS 5000
#define REDIS_DEFAULT_DEDUPE_MS (24LL * 3600 * 1000)
#define REDIS_ARGS_MAX 16

struct redis_conn {
	const char *name; /* the connector's, for messages */
	char *host;
	int port;
	int db;
	char *password; /* secret, owned (sl_secret_free) */
	char *stream, *group, *field;
	bool from_start;
	int64_t timeout_ms, claim_idle_ms, reclaim_every_ms, dedupe_ms;

	pthread_mutex_t mu; /* guards pub: publish calls share one connection */
	redisContext *pub;
};

struct redis_sub {
	struct redis_conn *rc;
	redisContext *ctx;
	char *group, *consumer;
	bool reclaim;
	int64_t next_reclaim_ms;
	char cursor[64]; /* XAUTOCLAIM's, "0-0" to start over */
};

static const struct sl_conf_key redis_keys[] = {
	{"url", SL_CONF_STRING, true, "redis://HOST[:PORT][/DB] (no password here: see password)"},
	{"password", SL_CONF_STRING, false, "secret reference (env:NAME or file:PATH) for AUTH"},
	{"stream", SL_CONF_STRING, true, "the stream's key"},
	{"group", SL_CONF_STRING, false, "consumer group (default sluice)"},
	{"field", SL_CONF_STRING, false, "the entry field holding the event (default data); without it, all fields"},
	{"start", SL_CONF_STRING, false, "where a new group starts: earliest (default) or latest"},
	{"timeout", SL_CONF_DURATION, false, "connect and command timeout (default 5s)"},
	{"claim_idle", SL_CONF_DURATION, false, "pending entries idle this long are taken over (default 30s)"},
	{"reclaim_every", SL_CONF_DURATION, false, "how often pending entries are looked for (default 5s)"},
	{"dedupe_window", SL_CONF_DURATION, false, "how long publish remembers an idempotency key (default 24h)"},
	{NULL, 0, false, NULL},
};

static const char *const redis_builtins[] = {SL_STREAM_PUBLISH_ACTION, "write", NULL};

/* ---- connections ------------------------------------------------------------------ */

static void reply_err(struct sl_err *err, const char *what, const redisContext *ctx, const redisReply *r)
{
	if (!r)
		sl_err_set(err, SL_EIO, SL_CLASS_TRANSIENT, "redis %s: %s", what,
			   ctx && ctx->errstr[0] ? ctx->errstr : "no reply");
	else {
		bool auth = strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0;
		sl_err_set(err, SL_EIO, auth ? SL_CLASS_AUTH : SL_CLASS_PERMANENT, "redis %s: %.*s", what,
			   (int)r->len, r->str);
	}
}

static redisReply *command(redisContext *ctx, struct sl_err *err, const char *what, int argc, const char **argv)
{
	size_t lens[REDIS_ARGS_MAX * 4];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redisReply *r = redisCommandArgv(ctx, argc, argv, lens);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		reply_err(err, what, ctx, r);
		if (r)
			freeReplyObject(r);
		return NULL;
	}
	return r;
}

static struct timeval tv_of(int64_t ms)
{
	return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* A connection, authenticated, on the right database. extra_ms is added to
 * the read timeout (a BLOCK of that long must not look like a dead peer). */
static redisContext *redis_connect(struct redis_conn *rc, int64_t extra_ms, struct sl_err *err)
{
	redisContext *ctx = redisConnectWithTimeout(rc->host, rc->port, tv_of(rc->timeout_ms));
	if (!ctx || ctx->err) {
		sl_err_set(err, SL_EIO, SL_CLASS_TRANSIENT, "redis %s:%d: %s", rc->host, rc->port,
			   ctx ? ctx->errstr : "cannot connect");
		if (ctx)
			redisFree(ctx);
		return NULL;
	}
	redisSetTimeout(ctx, tv_of(rc->timeout_ms + extra_ms));
	redisReply *r = NULL;
	if (rc->password) {
		const char *argv[] = {"AUTH", rc->password};
		r = command(ctx, err, "AUTH", 2, argv);
		if (!r)
			goto fail;
		freeReplyObject(r);
	}
	if (rc->db) {
		char db[16];
		snprintf(db, sizeof db, "%d", rc->db);
		const char *argv[] = {"SELECT", db};
		r = command(ctx, err, "SELECT", 2, argv);
		if (!r)
			goto fail;
		freeReplyObject(r);
	}
	return ctx;
fail:
	redisFree(ctx);
	return NULL;
}

/* ---- config ------------------------------------------------------------------------ */

static void parse_url(struct redis_conn *rc, const char *url, struct sl_conf_ctx *ctx)
{
	struct sl_conn_url u;
	if (sl_conn__url_parse(url, &u) || strcmp(u.scheme, "redis") != 0) {
		if (u.scheme)
			sl_conn__url_free(&u);
		sl_conf_error(ctx, "/url", "url must be redis://HOST[:PORT][/DB]");
		return;
	}
	if (u.password)
		/* Not echoed: the URL holds a secret. */
		sl_conf_error(ctx, "/url", "url must not hold a password: give password: env:NAME");
	rc->host = sl_strdup(u.host);
	rc->port = u.port ? u.port : 6379;
	int64_t db = 0;
	if (u.path && (sl_parse_i64(u.path, &db) || db < 0 || db > 1000000))
		sl_conf_error(ctx, "/url", "url path must be a database number, not \"%s\"", u.path);
	rc->db = (int)db;
	sl_conn__url_free(&u);
}

static int redis_init(struct sl_connector *c, struct sl_conf_ctx *ctx)
{
	int before = ctx->nerrors;
	const json_t *doc = c->config;
	struct redis_conn *rc = sl_xcalloc(1, sizeof *rc);
	c->priv = rc;
	rc->name = c->name;
	pthread_mutex_init(&rc->mu, NULL);
	parse_url(rc, sl_conf_str(doc, "url", "redis://127.0.0.1"), ctx);
	sl_conf_secret(ctx, doc, "", "password", false, &rc->password);
	rc->stream = sl_strdup(sl_conf_str(doc, "stream", ""));
	rc->group = sl_strdup(sl_conf_str(doc, "group", "sluice"));
	rc->field = sl_strdup(sl_conf_str(doc, "field", "data"));
	if (json_is_string(json_object_get(doc, "stream")) && !rc->stream[0])
		sl_conf_error(ctx, "/stream", "stream must not be empty");
	if (!rc->group[0])
		sl_conf_error(ctx, "/group", "group must not be empty");
	const char *start = sl_conf_str(doc, "start", "earliest");
	if (strcmp(start, "earliest") && strcmp(start, "latest"))
		sl_conf_error(ctx, "/start", "start must be earliest or latest, not \"%s\"", start);
	rc->from_start = strcmp(start, "latest") != 0;
	rc->timeout_ms = sl_conf_duration(ctx, doc, "", "timeout", REDIS_DEFAULT_TIMEOUT_MS);
	rc->claim_idle_ms = sl_conf_duration(ctx, doc, "", "claim_idle", REDIS_DEFAULT_CLAIM_IDLE_MS);
	rc->reclaim_every_ms = sl_conf_duration(ctx, doc, "", "reclaim_every", REDIS_DEFAULT_RECLAIM_EVERY_MS);
	rc->dedupe_ms = sl_conf_duration(ctx, doc, "", "dedupe_window", REDIS_DEFAULT_DEDUPE_MS);
	return ctx->nerrors - before;
}

static int redis_action_init(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
			     const char *pointer)
{
	if (strcmp(a->name, SL_STREAM_PUBLISH_ACTION) != 0) {
		sl_conf_error(ctx, pointer, "a redis_stream connector has only the action publish, not \"%s\"", a->name);
		return 1;
	}
	return 0;
}

static void redis_close(struct sl_connector *c)
{
	struct redis_conn *rc = c->priv;
	if (!rc)
		return;
	if (rc->pub)
		redisFree(rc->pub);
	pthread_mutex_destroy(&rc->mu);
	free(rc->host);
	sl_secret_free(rc->password);
	free(rc->stream);
	free(rc->group);
	free(rc->field);
	free(rc);
	c->priv = NULL;
}

/* ---- publish ------------------------------------------------------------------------ */

/* Adds the entry unless the marker key exists; sets the marker with it. */
static const char publish_script[] =
	"if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then "
	"return redis.call('XADD', KEYS[1], '*', ARGV[1], ARGV[2]) end return false";

static redisReply *publish_once(struct redis_conn *rc, const char *body, const char *key, struct sl_err *err)
{
	if (!rc->pub && !(rc->pub = redis_connect(rc, 0, err)))
		return NULL;
	redisReply *r;
	if (key) {
		char *marker = sl_asprintf("sluice:emitted:%s:%s", rc->stream, key);
		char ttl[32];
		snprintf(ttl, sizeof ttl, "%lld", (long long)rc->dedupe_ms);
		const char *argv[] = {"EVAL", publish_script, "2", rc->stream, marker, rc->field, body, ttl};
		r = command(rc->pub, err, "publish", 8, argv);
		free(marker);
	} else {
		const char *argv[] = {"XADD", rc->stream, "*", rc->field, body};
		r = command(rc->pub, err, "XADD", 5, argv);
	}
	if (!r && rc->pub->err) { /* the connection broke: the next call opens a new one */
		redisFree(rc->pub);
		rc->pub = NULL;
	}
	return r;
}

static int redis_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		      struct sl_call_result *res, struct sl_err *err)
{
	struct redis_conn *rc = c->priv;
	size_t len;
	char *body = sl_conn__publish_body(call, &len);
	pthread_mutex_lock(&rc->mu);
	redisReply *r = publish_once(rc, body, call->idempotency_key, err);
	if (!r && !rc->pub) /* one retry on a fresh connection: the old one may have timed out idle */
		r = publish_once(rc, body, call->idempotency_key, err);
	pthread_mutex_unlock(&rc->mu);
	free(body);
	if (!r)
		return err->code ? err->code : SL_EIO;
	if (r->type == REDIS_REPLY_STRING)
		res->output = json_pack("{s:s, s:s#}", "stream", rc->stream, "id", r->str, (int)r->len);
	else /* the marker was there: published before */
		res->output = json_pack("{s:s, s:b}", "stream", rc->stream, "duplicate", 1);
	freeReplyObject(r);
	return 0;
}

/* ---- subscriptions ------------------------------------------------------------------ */

static int group_create(struct redis_sub *s, struct sl_err *err)
{
	const char *argv[] = {"XGROUP", "CREATE", s->rc->stream, s->group, s->rc->from_start ? "0" : "$", "MKSTREAM"};
	size_t lens[6];
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	redisReply *r = redisCommandArgv(s->ctx, 6, argv, lens);
	bool ok = r && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0);
	if (!ok)
		reply_err(err, "XGROUP CREATE", s->ctx, r);
	if (r)
		freeReplyObject(r);
	return ok ? 0 : SL_EIO;
}

static int sub_connect(struct redis_sub *s, int64_t block_ms, struct sl_err *err)
{
	if (s->ctx)
		return 0;
	s->ctx = redis_connect(s->rc, block_ms, err);
	if (!s->ctx)
		return err->code;
	if (group_create(s, err)) {
		redisFree(s->ctx);
		s->ctx = NULL;
		return err->code;
	}
	return 0;
}

static void sub_drop(struct redis_sub *s)
{
	if (s->ctx)
		redisFree(s->ctx);
	s->ctx = NULL;
}

static int redis_sub_open(struct sl_connector *c, const struct sl_stream_sub_opts *o, void **out,
			  struct sl_err *err)
{
	struct redis_sub *s = sl_xcalloc(1, sizeof *s);
	s->rc = c->priv;
	s->group = sl_strdup(o->group ? o->group : s->rc->group);
	s->consumer = sl_strdup(o->consumer);
	s->reclaim = o->reclaim;
	snprintf(s->cursor, sizeof s->cursor, "0-0");
	*out = s;
	/* A broker that is down now is tried again by each fetch. */
	return sub_connect(s, 0, err);
}

static void redis_sub_close(void *sub)
{
	struct redis_sub *s = sub;
	sub_drop(s);
	free(s->group);
	free(s->consumer);
	free(s);
}

/* The entry's event: the configured field, else every field as an object. */
static json_t *entry_data(const struct redis_conn *rc, const redisReply *fields)
{
	if (!fields || fields->type != REDIS_REPLY_ARRAY)
		return json_null();
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i], *v = fields->element[i + 1];
		if (k->type == REDIS_REPLY_STRING && strcmp(k->str, rc->field) == 0 && v->type == REDIS_REPLY_STRING)
			return sl_stream_body_json(v->str, v->len);
	}
	json_t *o = json_object();
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i], *v = fields->element[i + 1];
		if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
			json_object_set_new(o, k->str, json_stringn_nocheck(v->str, v->len));
	}
	return o;
}

/* Appends the entries of a reply array [[id, [f, v, ...]], ...]. */
static void take_entries(struct redis_sub *s, const redisReply *arr, bool redelivered, struct sl_stream_msg *out,
			 size_t max, size_t *n)
{
	for (size_t i = 0; arr && arr->type == REDIS_REPLY_ARRAY && i < arr->elements && *n < max; i++) {
		const redisReply *e = arr->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		struct sl_stream_msg *m = &out[(*n)++];
		m->identity = sl_stream_identity("redis", s->rc->stream, e->element[0]->str);
		m->data = entry_data(s->rc, e->element[1]);
		m->redelivered = redelivered;
		m->handle = sl_strdup(e->element[0]->str);
	}
}

/* Each process joins under new consumer names (host, pid), so the names of
 * processes gone would pile up in the group. One with nothing pending and
 * silent for twice claim_idle is removed (a live one reads every fetch; were
 * it removed, its next read would add it again). Best effort: errors are
 * ignored. */
static void prune_consumers(struct redis_sub *s)
{
	struct sl_err err;
	const char *argv[] = {"XINFO", "CONSUMERS", s->rc->stream, s->group};
	redisReply *r = command(s->ctx, &err, "XINFO CONSUMERS", 4, argv);
	if (!r)
		return;
	long long limit = s->rc->claim_idle_ms * 2;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *c = r->element[i];
		const char *name = NULL;
		long long pending = -1, idle = 0;
		for (size_t k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements; k += 2) {
			const redisReply *key = c->element[k], *v = c->element[k + 1];
			if (key->type != REDIS_REPLY_STRING)
				continue;
			if (strcmp(key->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
				name = v->str;
			else if (strcmp(key->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
				pending = v->integer;
			else if (strcmp(key->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
				idle = v->integer;
		}
		if (!name || pending != 0 || idle < limit || strcmp(name, s->consumer) == 0)
			continue;
		const char *del[] = {"XGROUP", "DELCONSUMER", s->rc->stream, s->group, name};
		redisReply *d = command(s->ctx, &err, "XGROUP DELCONSUMER", 5, del);
		if (d)
			freeReplyObject(d);
	}
	freeReplyObject(r);
}

/* XAUTOCLAIM: entries idle past claim_idle become ours. Walks the pending
 * list a page per fetch; back at its start, waits reclaim_every. */
static int reclaim(struct redis_sub *s, size_t max, struct sl_stream_msg *out, size_t *n, struct sl_err *err)
{
	int64_t now = sl_mono_ms();
	if (!s->reclaim || now < s->next_reclaim_ms)
		return 0;
	char idle[32], count[32];
	snprintf(idle, sizeof idle, "%lld", (long long)s->rc->claim_idle_ms);
	snprintf(count, sizeof count, "%zu", max);
	const char *argv[] = {"XAUTOCLAIM", s->rc->stream, s->group, s->consumer, idle, s->cursor, "COUNT", count};
	redisReply *r = command(s->ctx, err, "XAUTOCLAIM", 8, argv);
	if (!r)
		return err->code;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING) {
		snprintf(s->cursor, sizeof s->cursor, "%s", r->element[0]->str);
		take_entries(s, r->element[1], true, out, max, n);
	}
	freeReplyObject(r);
	if (strcmp(s->cursor, "0-0") == 0) { /* the whole pending list was walked */
		s->next_reclaim_ms = now + s->rc->reclaim_every_ms;
		prune_consumers(s);
	}
	return 0;
}

static int read_new(struct redis_sub *s, size_t max, int64_t wait_ms, struct sl_stream_msg *out, size_t *n,
		    struct sl_err *err)
{
	char count[32], block[32];
	snprintf(count, sizeof count, "%zu", max);
	snprintf(block, sizeof block, "%lld", (long long)(wait_ms > 0 ? wait_ms : 1));
	const char *argv[] = {"XREADGROUP", "GROUP", s->group, s->consumer, "COUNT", count,
			      "BLOCK",      block,   "STREAMS", s->rc->stream, ">"};
	redisReply *r = command(s->ctx, err, "XREADGROUP", 11, argv);
	if (!r)
		return err->code;
	/* [[stream, [[id, fields], ...]]], or nil when BLOCK ran out */
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
	    r->element[0]->elements >= 2)
		take_entries(s, r->element[0]->element[1], false, out, max, n);
	freeReplyObject(r);
	return 0;
}

static int redis_fetch(void *sub, size_t max, int64_t wait_ms, struct sl_stream_msg *out, size_t *n,
		       struct sl_err *err)
{
	struct redis_sub *s = sub;
	int rc = sub_connect(s, wait_ms, err);
	if (!rc)
		rc = reclaim(s, max, out, n, err);
	if (!rc && *n == 0)
		rc = read_new(s, max, wait_ms, out, n, err);
	if (rc && s->ctx && (s->ctx->err || strstr(err->msg, "NOGROUP")))
		sub_drop(s); /* reconnect (and re-create a deleted group) next time */
	return rc;
}

static int redis_ack(void *sub, struct sl_stream_msg *m, size_t n, struct sl_err *err)
{
	struct redis_sub *s = sub;
	int rc = sub_connect(s, 0, err);
	if (rc)
		return rc;
	const char **argv = sl_xcalloc(n + 3, sizeof *argv);
	size_t *lens = sl_xcalloc(n + 3, sizeof *lens);
	argv[0] = "XACK";
	argv[1] = s->rc->stream;
	argv[2] = s->group;
	for (size_t i = 0; i < n; i++)
		argv[3 + i] = m[i].handle;
	for (size_t i = 0; i < n + 3; i++)
		lens[i] = strlen(argv[i]);
	redisReply *r = redisCommandArgv(s->ctx, (int)(n + 3), argv, lens);
	free(argv);
	free(lens);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		reply_err(err, "XACK", s->ctx, r);
		if (r)
			freeReplyObject(r);
		if (s->ctx->err)
			sub_drop(s);
		return SL_EIO;
	}
	freeReplyObject(r);
	return 0;
}

/* The group's lag: entries not yet delivered (XINFO GROUPS "lag", Redis 7)
 * plus those delivered and not acknowledged ("pending"). */
static int redis_lag(void *sub, int64_t *lag, struct sl_err *err)
{
	struct redis_sub *s = sub;
	int rc = sub_connect(s, 0, err);
	if (rc)
		return rc;
	const char *argv[] = {"XINFO", "GROUPS", s->rc->stream};
	redisReply *r = command(s->ctx, err, "XINFO GROUPS", 3, argv);
	if (!r)
		return err->code;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *g = r->element[i];
		bool ours = false;
		long long pending = 0, undelivered = 0;
		for (size_t k = 0; g->type == REDIS_REPLY_ARRAY && k + 1 < g->elements; k += 2) {
			const redisReply *key = g->element[k], *v = g->element[k + 1];
			if (key->type != REDIS_REPLY_STRING)
				continue;
			if (strcmp(key->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
				ours = strcmp(v->str, s->group) == 0;
			else if (strcmp(key->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
				pending = v->integer;
			else if (strcmp(key->str, "lag") == 0 && v->type == REDIS_REPLY_INTEGER)
				undelivered = v->integer;
		}
		if (ours)
			*lag = pending + undelivered;
	}
	freeReplyObject(r);
	return 0;
}

static void redis_msg_free(struct sl_stream_msg *m)
{
	free(m->handle);
	m->handle = NULL;
}

static const struct sl_stream_ops redis_stream_ops = {
	.sub_open_fn = redis_sub_open,
	.fetch_fn = redis_fetch,
	.ack_fn = redis_ack,
	.lag_fn = redis_lag,
	.msg_free_fn = redis_msg_free,
	.sub_close_fn = redis_sub_close,
};

const struct sl_connector_type sl_conn__redis_stream_type = {
	.name = "redis_stream",
	.description = "a Redis Stream: consumer-group trigger source (ack after commit) and publish target",
	.keys = redis_keys,
	.action_keys = NULL,
	.builtin_actions = redis_builtins,
	.init_fn = redis_init,
	.action_init_fn = redis_action_init,
	.call_fn = redis_call,
	.poll_fn = NULL,
	.action_free_fn = NULL,
	.close_fn = redis_close,
	.stream = &redis_stream_ops,
};
