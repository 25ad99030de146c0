/*
 * stream.c: the generic part of the stream connectors (redis_stream.c,
 * nats.c, kafka.c): the wrappers that keep health and lag, the message body
 * as run input, the CloudEvents envelope and the URL split they share.
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sl_stream_is(const struct sl_connector *c)
{
	return c && c->type->stream;
}

/* Like health_record in connector.c, without counting a call: a fetch that
 * finds nothing is no success worth a timestamp, and a failing broker must
 * show up as degraded. */
static void stream_health(struct sl_connector *c, int rc, const struct sl_err *err)
{
	int64_t now = sl_now_ms();
	pthread_mutex_lock(&c->health_mu);
	c->health.stream = true;
	if (rc == 0) {
		c->health.healthy = true;
		c->health.last_success_ms = now;
	} else {
		c->health.errors++;
		c->health.last_error_ms = now;
		c->health.last_error_class = err->cls == SL_CLASS_NONE ? SL_CLASS_TRANSIENT : err->cls;
		snprintf(c->health.last_error, sizeof c->health.last_error, "%s", err->msg);
		if (err->cls == SL_CLASS_AUTH)
			c->health.healthy = false;
	}
	pthread_mutex_unlock(&c->health_mu);
}

static int stream_settle(struct sl_connector *c, int rc, struct sl_err *err)
{
	if (rc) {
		if (rc > 0)
			rc = SL_EIO;
		if (!err->code)
			err->code = rc;
		if (err->cls == SL_CLASS_NONE)
			err->cls = SL_CLASS_TRANSIENT; /* a broker that fails mostly comes back */
		if (!err->msg[0])
			snprintf(err->msg, sizeof err->msg, "%s", sl_code_message(rc));
	}
	stream_health(c, rc, err);
	return rc;
}

int sl_stream_open(struct sl_connector *c, const struct sl_stream_sub_opts *o, void **sub, struct sl_err *err)
{
	sl_err_clear(err);
	*sub = NULL;
	if (!sl_stream_is(c))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "connector %s is not a stream", c->name);
	return stream_settle(c, c->type->stream->sub_open_fn(c, o, sub, err), err);
}

int sl_stream_fetch(struct sl_connector *c, void *sub, size_t max, int64_t wait_ms, struct sl_stream_msg *out,
		    size_t *n, struct sl_err *err)
{
	sl_err_clear(err);
	*n = 0;
	return stream_settle(c, c->type->stream->fetch_fn(sub, max, wait_ms, out, n, err), err);
}

int sl_stream_ack(struct sl_connector *c, void *sub, struct sl_stream_msg *m, size_t n, struct sl_err *err)
{
	sl_err_clear(err);
	if (n == 0)
		return 0;
	return stream_settle(c, c->type->stream->ack_fn(sub, m, n, err), err);
}

int sl_stream_lag(struct sl_connector *c, void *sub, int64_t *lag, struct sl_err *err)
{
	sl_err_clear(err);
	*lag = -1;
	int rc = c->type->stream->lag_fn ? c->type->stream->lag_fn(sub, lag, err) : 0;
	if (rc)
		return stream_settle(c, rc, err);
	pthread_mutex_lock(&c->health_mu);
	c->health.lag = *lag;
	pthread_mutex_unlock(&c->health_mu);
	return 0;
}

void sl_stream_msgs_free(struct sl_connector *c, struct sl_stream_msg *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c->type->stream->msg_free_fn)
			c->type->stream->msg_free_fn(&m[i]);
		free(m[i].identity);
		json_decref(m[i].data);
		memset(&m[i], 0, sizeof m[i]);
	}
}

void sl_stream_close(struct sl_connector *c, void *sub)
{
	if (sub)
		c->type->stream->sub_close_fn(sub);
}

void sl_stream_count(struct sl_connector *c, uint64_t consumed, uint64_t redelivered, uint64_t duplicates)
{
	pthread_mutex_lock(&c->health_mu);
	c->health.consumed += consumed;
	c->health.redelivered += redelivered;
	c->health.duplicates += duplicates;
	pthread_mutex_unlock(&c->health_mu);
}

char *sl_stream_identity(const char *type, const char *stream, const char *position)
{
	return sl_asprintf("%s:%s:%s", type, stream, position);
}

json_t *sl_stream_body_json(const char *body, size_t len)
{
	json_t *v = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	if (!v)
		return json_stringn_nocheck(body, len);
	if (json_is_object(v) && json_is_string(json_object_get(v, "specversion")) && json_object_get(v, "data")) {
		json_t *data = json_incref(json_object_get(v, "data"));
		json_decref(v);
		return data;
	}
	return v;
}

json_t *sl_cloudevent_new(const char *id, const char *source, const char *type, const json_t *data)
{
	char now[32];
	sl_time_format(sl_now_ms(), now);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id", id, "source", source,
			 "type", type, "time", now, "datacontenttype", "application/json", "data",
			 data ? data : json_null());
}

char *sl_conn__publish_body(const struct sl_call *call, size_t *len)
{
	char *s = json_dumps(call->input ? call->input : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		s = sl_strdup("null");
	*len = strlen(s);
	return s;
}

/* ---- URL split ------------------------------------------------------------------ */

int sl_conn__url_parse(const char *url, struct sl_conn_url *out)
{
	memset(out, 0, sizeof *out);
	const char *sep = strstr(url, "://");
	if (!sep)
		return -1;
	out->scheme = sl_strndup(url, (size_t)(sep - url));
	const char *p = sep + 3;
	const char *slash = strchr(p, '/');
	const char *end = slash ? slash : p + strlen(p);
	const char *at = memrchr(p, '@', (size_t)(end - p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		out->user = sl_strndup(p, (size_t)((colon ? colon : at) - p));
		if (colon)
			out->password = sl_strndup(colon + 1, (size_t)(at - colon - 1));
		p = at + 1;
	}
	const char *colon = memrchr(p, ':', (size_t)(end - p));
	if (colon && !memchr(p, ']', (size_t)(end - colon))) {
		int64_t port;
		char tmp[16];
		snprintf(tmp, sizeof tmp, "%.*s", (int)(end - colon - 1), colon + 1);
		if (sl_parse_i64(tmp, &port) || port < 1 || port > 65535) {
			sl_conn__url_free(out);
			return -1;
		}
		out->port = (int)port;
		end = colon;
	}
	out->host = sl_strndup(p, (size_t)(end - p));
	if (slash && slash[1])
		out->path = sl_strdup(slash + 1);
	if (!out->host[0]) {
		sl_conn__url_free(out);
		return -1;
	}
	return 0;
}

void sl_conn__url_free(struct sl_conn_url *u)
{
	free(u->scheme);
	free(u->user);
	sl_secret_free(u->password);
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof *u);
}
