/*
 * sim.c: the HTTP core of a simulator: request intake (bounded bodies),
 * admin endpoints, auth, the token bucket, fault injection, Idempotency-Key
 * replays and effect counting. The vendor models live in vendors.c, the
 * LLM API model in model.c; a const table of callbacks per kind (sim_ops)
 * is all the core knows of them.
 *
 * Order of a vendor request: 413, 401, 429, then faults (latency, hang,
 * reset, 5xx, malformed) so that a fault never leaves an effect behind,
 * then the idempotency replay, then the model.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sim/sim_int.h"

#define SIM_HANG_MS 30000     /* a "timeout" fault holds the request this long at most */
#define SIM_WAIT_SLICE_MS 25  /* how often a waiting request looks for stop/close */
#define SIM_THREADS 8

static const struct sim_ops sim_vendor_ops = {
	.init_fn = sim_vendor_init,
	.free_fn = sim_vendor_free,
	.handle_fn = sim_vendor_handle,
	.malformed = "{\"data\": [{\"id\": \"x\", ",
	.idempotency = true,
	.drift = true,
};

/* The registry of kinds, looked up by name at start. */
static const struct {
	const char *name;
	const struct sim_ops *ops;
} sim_kinds[SIM_KINDS] = {
	[SIM_HELPDESK] = {"helpdesk", &sim_vendor_ops},
	[SIM_CRM] = {"crm", &sim_vendor_ops},
	[SIM_ERP] = {"erp", &sim_vendor_ops},
	[SIM_MODEL] = {"model", &sim_model_ops},
};

/* Per connection: the body read so far. */
struct sim_conn {
	struct sl_buf body;
	bool too_big;
};

/* ---- small helpers -------------------------------------------------------------- */

/* xorshift64*: fault dice, deterministic per seed. Called with mu held. */
static double sim_random(struct sl_sim *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

void sim_problem(struct sim_resp *rp, unsigned status, const char *field, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	const char *title = status == 400   ? "Bad Request"
			    : status == 401 ? "Unauthorized"
			    : status == 404 ? "Not Found"
			    : status == 405 ? "Method Not Allowed"
			    : status == 413 ? "Payload Too Large"
			    : status == 422 ? "Unprocessable Entity"
			    : status == 429 ? "Too Many Requests"
			    : status == 503 ? "Service Unavailable"
					    : "Error";
	char type[96];
	snprintf(type, sizeof type, "urn:sluice:sim:%u", status);
	json_decref(rp->body);
	rp->body = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", (int)status,
			     "detail", detail);
	if (rp->body && field)
		json_object_set_new(rp->body, "field", json_string(field));
	rp->status = status;
	rp->problem = true;
}

const char *sim_query(const struct sim_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->con, MHD_GET_ARGUMENT_KIND, name);
}

/* Renames key `from` to `to` in every object under v (schema drift). */
static void sim_rename(json_t *v, const char *from, const char *to)
{
	size_t i;
	json_t *x;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) sim_rename(x, from, to);
		return;
	}
	if (!json_is_object(v))
		return;
	json_t *val = json_object_get(v, from);
	if (val) {
		json_object_set(v, to, val);
		json_object_del(v, from);
	}
	const char *k;
	json_object_foreach(v, k, x) sim_rename(x, from, to);
}

/* Waits up to ms, returning early (false) when the simulator stops or the
 * client hangs up: a hung request must not outlive its client or pin a
 * pool thread past sl_sim_stop. */
static bool sim_wait(struct sl_sim *s, struct MHD_Connection *con, int ms)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
	int fd = ci ? ci->connect_fd : -1;
	int64_t end = sl_mono_ms() + ms;
	for (;;) {
		if (atomic_load(&s->stopping))
			return false;
		int64_t left = end - sl_mono_ms();
		if (left <= 0)
			return true;
		struct pollfd p = {.fd = fd, .events = POLLRDHUP};
		int n = poll(&p, fd >= 0 ? 1 : 0, (int)SL_MIN(left, SIM_WAIT_SLICE_MS));
		if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return false;
	}
}

static enum MHD_Result sim_send(struct MHD_Connection *con, unsigned status, const char *body, const char *ctype,
				const char *link, const char *allow, int retry_after)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	if (link && *link)
		MHD_add_response_header(r, "Link", link);
	if (allow && *allow)
		MHD_add_response_header(r, "Allow", allow);
	if (retry_after > 0) {
		char ra[24];
		snprintf(ra, sizeof ra, "%d", retry_after);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	enum MHD_Result rc = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* A text/event-stream body goes out chunked, one event ("...\n\n") per
 * chunk, as the real APIs send it, so clients read it as a stream. */
struct sim_stream {
	char *text; /* owned */
	size_t len;
};

static ssize_t sim_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sim_stream *st = cls;
	if (pos >= st->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	const char *from = st->text + pos, *end = strstr(from, "\n\n");
	size_t n = end ? (size_t)(end - from) + 2 : st->len - (size_t)pos;
	n = SL_MIN(n, max);
	memcpy(buf, from, n);
	return (ssize_t)n;
}

static void sim_stream_free(void *cls)
{
	struct sim_stream *st = cls;
	free(st->text);
	free(st);
}

/* Sends an event stream (takes text). */
static enum MHD_Result sim_send_stream(struct MHD_Connection *con, unsigned status, char *text, const char *ctype)
{
	struct sim_stream *st = sl_xcalloc(1, sizeof *st);
	*st = (struct sim_stream){text, strlen(text)};
	struct MHD_Response *r =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sim_stream_read, st, sim_stream_free);
	if (!r) {
		sim_stream_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	enum MHD_Result rc = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return rc;
}

static const char *sim_ctype(const struct sim_resp *rp)
{
	return rp->ctype ? rp->ctype : rp->problem ? "application/problem+json" : "application/json";
}

static enum MHD_Result sim_send_resp(struct MHD_Connection *con, struct sim_resp *rp)
{
	char *s = rp->body && !rp->text ? json_dumps(rp->body, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL) : NULL;
	const char *text = rp->text ? rp->text : s ? s : "";
	enum MHD_Result rc = sim_send(con, rp->status, text, sim_ctype(rp), rp->link, rp->allow, rp->retry_after);
	free(s);
	return rc;
}

static void sim_resp_free(struct sim_resp *rp)
{
	json_decref(rp->body);
	free(rp->text);
}

/* An error in the kind's wire shape: problem+json for the vendors, an
 * OpenAI or Anthropic error body for the model. */
static void sim_error(const struct sl_sim *s, const char *url, unsigned status, const char *detail, struct sim_resp *rp)
{
	if (s->ops->error_fn)
		s->ops->error_fn(url, status, detail, rp);
	else
		sim_problem(rp, status, NULL, "%s", detail);
}

static enum MHD_Result sim_send_error(const struct sl_sim *s, struct MHD_Connection *con, const char *url,
				      unsigned status, int retry_after, const char *detail)
{
	struct sim_resp rp = {0};
	sim_error(s, url, status, detail, &rp);
	if (retry_after > 0)
		rp.retry_after = retry_after;
	enum MHD_Result rc = sim_send_resp(con, &rp);
	sim_resp_free(&rp);
	return rc;
}

static enum MHD_Result sim_send_problem(struct MHD_Connection *con, unsigned status, const char *detail)
{
	struct sim_resp rp = {0};
	sim_problem(&rp, status, NULL, "%s", detail);
	enum MHD_Result rc = sim_send_resp(con, &rp);
	sim_resp_free(&rp);
	return rc;
}

/* ---- admin endpoints: /_sim/... ------------------------------------------------- */

static json_t *sim_faults_json(const struct sl_sim *s)
{
	const struct sim_faults *f = &s->faults;
	return json_pack("{s:i, s:f, s:f, s:f, s:f, s:b, s:i, s:f, s:i}", "latency_ms", f->latency_ms, "error_rate",
			 f->error_rate, "timeout_rate", f->timeout_rate, "reset_rate", f->reset_rate,
			 "malformed_rate", f->malformed_rate, "drift", f->drift, "storm_429", f->storm_429,
			 "rate_per_s", s->rate_per_s, "burst",
			 s->burst);
}

static int sim_rate_field(json_t *body, const char *name, double *out, struct sim_resp *rp)
{
	json_t *v = json_object_get(body, name);
	if (!v)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
		sim_problem(rp, 422, name, "%s must be a number from 0 to 1", name);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

/* Validates the whole body first, then applies it: a bad field changes nothing. */
static void sim_faults_set(struct sl_sim *s, json_t *body, struct sim_resp *rp)
{
	struct sim_faults f = s->faults;
	if (!json_is_object(body)) {
		sim_problem(rp, 422, NULL, "the body must be a JSON object of fault fields");
		return;
	}
	json_t *v = json_object_get(body, "latency_ms");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 600000) {
			sim_problem(rp, 422, "latency_ms", "latency_ms must be an integer from 0 to 600000");
			return;
		}
		f.latency_ms = (int)json_integer_value(v);
	}
	if (sim_rate_field(body, "error_rate", &f.error_rate, rp) || sim_rate_field(body, "timeout_rate", &f.timeout_rate, rp) ||
	    sim_rate_field(body, "reset_rate", &f.reset_rate, rp) ||
	    sim_rate_field(body, "malformed_rate", &f.malformed_rate, rp))
		return;
	v = json_object_get(body, "storm_429");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000) {
			sim_problem(rp, 422, "storm_429", "storm_429 must be an integer from 0 to 1000000");
			return;
		}
		f.storm_429 = (int)json_integer_value(v);
	}
	v = json_object_get(body, "drift");
	if (v) {
		if (!json_is_boolean(v)) {
			sim_problem(rp, 422, "drift", "drift must be true or false");
			return;
		}
		f.drift = json_is_true(v);
	}
	s->faults = f;
	rp->status = 200;
	rp->body = sim_faults_json(s);
}

static json_t *sim_effects_json(const struct sl_sim *s)
{
	return json_pack("{s:I, s:I, s:O, s:{s:I, s:I, s:I}}", "effects", (json_int_t)s->effects, "replays",
			 (json_int_t)s->replays, "by_route", s->by_route, "rejected", "401", (json_int_t)s->rej_401,
			 "429", (json_int_t)s->rej_429, "5xx", (json_int_t)s->rej_5xx);
}

/* Back to the state right after start: seed data, no keys, no counts,
 * the start faults, a full bucket. */
static int sim_state_reset(struct sl_sim *s)
{
	s->ops->free_fn(s);
	json_decref(s->keys);
	json_decref(s->by_route);
	s->keys = json_object();
	s->by_route = json_object();
	s->effects = s->replays = s->rej_401 = s->rej_429 = s->rej_5xx = 0;
	s->faults = s->start_faults;
	s->rng = s->seed * 0x9E3779B97F4A7C15ULL + 1;
	s->tokens = s->burst;
	s->tokens_at_ms = sl_mono_ms();
	if (!s->keys || !s->by_route)
		return -1;
	return s->ops->init_fn(s);
}

static void sim_admin(struct sl_sim *s, const char *method, const char *what, json_t *body, struct sim_resp *rp)
{
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	if (strcmp(what, "faults") == 0) {
		if (get) {
			rp->status = 200;
			rp->body = sim_faults_json(s);
		} else if (post) {
			sim_faults_set(s, body, rp);
		} else {
			snprintf(rp->allow, sizeof rp->allow, "GET, POST");
			sim_problem(rp, 405, NULL, "use GET or POST on /_sim/faults");
		}
	} else if (strcmp(what, "effects") == 0) {
		if (get) {
			rp->status = 200;
			rp->body = sim_effects_json(s);
		} else {
			snprintf(rp->allow, sizeof rp->allow, "GET");
			sim_problem(rp, 405, NULL, "use GET on /_sim/effects");
		}
	} else if (strcmp(what, "reset") == 0) {
		if (!post) {
			snprintf(rp->allow, sizeof rp->allow, "POST");
			sim_problem(rp, 405, NULL, "use POST on /_sim/reset");
		} else if (sim_state_reset(s) != 0) {
			sim_problem(rp, 500, NULL, "out of memory");
		} else {
			rp->status = 200;
			rp->body = json_pack("{s:b}", "reset", 1);
		}
	} else if (!s->ops->admin_fn || !s->ops->admin_fn(s, method, what, body, rp)) {
		sim_problem(rp, 404, NULL, "no admin endpoint /_sim/%s", what);
	}
}

/* ---- the gates before a vendor request -------------------------------------------- */

static bool sim_authorized(const struct sl_sim *s, struct MHD_Connection *con)
{
	if (!s->api_key)
		return true;
	size_t klen = strlen(s->api_key);
	const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
	if (h && sl_str_startswith(h, "Bearer ") && strlen(h + 7) == klen && sl_ct_equal(h + 7, s->api_key, klen))
		return true;
	h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Api-Key");
	return h && strlen(h) == klen && sl_ct_equal(h, s->api_key, klen);
}

/* Takes a token; returns 0, or the seconds (>= 1) the client should wait. */
static int sim_take_token(struct sl_sim *s)
{
	if (s->rate_per_s <= 0)
		return 0;
	int64_t now = sl_mono_ms();
	s->tokens = SL_MIN((double)s->burst, s->tokens + (double)(now - s->tokens_at_ms) * s->rate_per_s / 1000.0);
	s->tokens_at_ms = now;
	if (s->tokens >= 1.0) {
		s->tokens -= 1.0;
		return 0;
	}
	double wait = ceil((1.0 - s->tokens) / s->rate_per_s);
	return wait < 1 ? 1 : (int)SL_MIN(wait, 3600.0);
}

enum sim_fault { FAULT_NONE, FAULT_HANG, FAULT_RESET, FAULT_ERROR, FAULT_MALFORMED };

/* Rolls the dice once per kind, in a fixed order, so a seed replays. */
static enum sim_fault sim_roll_fault(struct sl_sim *s)
{
	const struct sim_faults *f = &s->faults;
	double r1 = sim_random(s), r2 = sim_random(s), r3 = sim_random(s), r4 = sim_random(s);
	if (r1 < f->timeout_rate)
		return FAULT_HANG;
	if (r2 < f->reset_rate)
		return FAULT_RESET;
	if (r3 < f->error_rate)
		return FAULT_ERROR;
	if (r4 < f->malformed_rate)
		return FAULT_MALFORMED;
	return FAULT_NONE;
}

static bool sim_is_write(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0 ||
	       strcmp(method, "DELETE") == 0;
}

/* ---- a vendor request --------------------------------------------------------------- */

/* Splits "/a/b/c" into at most 3 segments in buf; false when deeper or empty. */
static bool sim_split(const char *url, char *buf, size_t cap, struct sim_req *rq)
{
	snprintf(buf, cap, "%s", url[0] == '/' ? url + 1 : url);
	rq->nseg = 0;
	char *p = buf;
	while (*p) {
		if (rq->nseg == 3)
			return false;
		rq->seg[rq->nseg++] = p;
		char *slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		p = slash + 1;
	}
	rq->seg[rq->nseg] = NULL;
	return rq->nseg > 0;
}

/* Replays the stored first answer of key, if any. Called with mu held. */
static bool sim_replay(struct sl_sim *s, const char *key, struct MHD_Connection *con, enum MHD_Result *rc)
{
	json_t *rec = json_object_get(s->keys, key);
	if (!rec)
		return false;
	s->replays++;
	*rc = sim_send(con, (unsigned)json_integer_value(json_object_get(rec, "status")),
		       json_string_value(json_object_get(rec, "body")), json_string_value(json_object_get(rec, "ctype")),
		       json_string_value(json_object_get(rec, "link")), NULL, 0);
	return true;
}

static void sim_remember(struct sl_sim *s, const char *key, const struct sim_resp *rp, const char *text)
{
	if (json_object_size(s->keys) >= SIM_KEYS_MAX)
		return; /* a full table forgets new keys rather than growing without bound */
	json_object_set_new(s->keys, key,
			    json_pack("{s:i, s:s, s:s, s:s}", "status", (int)rp->status, "body", text, "ctype",
				      rp->problem ? "application/problem+json" : "application/json", "link", rp->link));
}

static void sim_count_effect(struct sl_sim *s, const struct sim_resp *rp)
{
	if (!rp->effect)
		return;
	s->effects++;
	json_t *n = json_object_get(s->by_route, rp->route);
	json_object_set_new(s->by_route, rp->route, json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* A raw body (an event stream): no drift, no idempotency record. Called
 * unlocked; frees rp. */
static enum MHD_Result sim_send_raw(struct sl_sim *s, struct MHD_Connection *con, struct sim_resp *rp)
{
	enum MHD_Result rc;
	if (rp->delay_ms > 0 && !sim_wait(s, con, rp->delay_ms)) {
		rc = MHD_NO;
	} else if (rp->ctype && strcmp(rp->ctype, "text/event-stream") == 0) {
		rc = sim_send_stream(con, rp->status, rp->text, rp->ctype);
		rp->text = NULL; /* the stream owns it now */
	} else {
		rc = sim_send_resp(con, rp);
	}
	sim_resp_free(rp);
	return rc;
}

/* The model's answer: body drifted when asked, remembered under its key,
 * sent after the delay the model asked for (waited for unlocked). */
static enum MHD_Result sim_run_model(struct sl_sim *s, struct sim_req *rq, const char *key)
{
	struct sim_resp rp = {.status = 500};
	enum MHD_Result rc;
	pthread_mutex_lock(&s->mu);
	if (key && sim_replay(s, key, rq->con, &rc)) {
		pthread_mutex_unlock(&s->mu);
		return rc;
	}
	s->ops->handle_fn(s, rq, &rp);
	if (!rp.body && !rp.text)
		sim_error(s, rq->url, 500, "out of memory", &rp);
	if (rp.text) {
		pthread_mutex_unlock(&s->mu);
		return sim_send_raw(s, rq->con, &rp);
	}
	if (s->ops->drift && s->faults.drift && rp.status < 300) {
		/* A copy: the body may share records with the stored state. */
		json_t *copy = json_deep_copy(rp.body);
		json_decref(rp.body);
		rp.body = copy;
		sim_rename(rp.body, sim_drift_from(s), sim_drift_to(s));
	}
	sim_count_effect(s, &rp);
	char *text = json_dumps(rp.body, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
	if (key && text)
		sim_remember(s, key, &rp, text);
	pthread_mutex_unlock(&s->mu);
	if (rp.delay_ms > 0 && !sim_wait(s, rq->con, rp.delay_ms))
		rc = MHD_NO;
	else
		rc = sim_send(rq->con, rp.status, text ? text : "", sim_ctype(&rp), rp.link, rp.allow, rp.retry_after);
	free(text);
	sim_resp_free(&rp);
	return rc;
}

/* Tells the kind about a request the core refused; takes mu. */
static void sim_note_reject(struct sl_sim *s, const char *url, const struct sim_conn *c, unsigned status)
{
	if (!s->ops->reject_fn)
		return;
	pthread_mutex_lock(&s->mu);
	s->ops->reject_fn(s, url, &c->body, status);
	pthread_mutex_unlock(&s->mu);
}

/* The gates before the model: 401, 429 and the fault dice. Returns true
 * when the request may go on; else *rc is the answer already queued. */
static bool sim_gates(struct sl_sim *s, struct sim_conn *c, struct MHD_Connection *con, const char *url,
		      enum MHD_Result *rc)
{
	pthread_mutex_lock(&s->mu);
	if (!sim_authorized(s, con)) {
		s->rej_401++;
		pthread_mutex_unlock(&s->mu);
		sim_note_reject(s, url, c, 401);
		*rc = sim_send_error(s, con, url, 401, 0, "send Authorization: Bearer KEY or X-Api-Key: KEY");
		return false;
	}
	int wait_s = sim_take_token(s);
	if (!wait_s && s->faults.storm_429 > 0) {
		s->faults.storm_429--;
		wait_s = 1;
	}
	if (wait_s) {
		s->rej_429++;
		pthread_mutex_unlock(&s->mu);
		sim_note_reject(s, url, c, 429);
		*rc = sim_send_error(s, con, url, 429, wait_s, "rate limit exceeded");
		return false;
	}
	enum sim_fault fault = sim_roll_fault(s);
	int latency = s->faults.latency_ms;
	if (fault == FAULT_ERROR)
		s->rej_5xx++;
	pthread_mutex_unlock(&s->mu);

	if (fault != FAULT_NONE)
		sim_note_reject(s, url, c, fault == FAULT_ERROR ? 503 : fault == FAULT_MALFORMED ? 200 : 0);
	*rc = MHD_NO;
	if (latency > 0 && !sim_wait(s, con, latency))
		return false;
	switch (fault) {
	case FAULT_HANG: sim_wait(s, con, SIM_HANG_MS); return false;
	case FAULT_RESET: return false; /* MHD closes the connection unanswered */
	case FAULT_ERROR: *rc = sim_send_error(s, con, url, 503, 0, "injected failure"); return false;
	case FAULT_MALFORMED: *rc = sim_send(con, 200, s->ops->malformed, "application/json", NULL, NULL, 0); return false;
	case FAULT_NONE: break;
	}
	return true;
}

static enum MHD_Result sim_vendor_request(struct sl_sim *s, struct sim_conn *c, struct MHD_Connection *con,
					  const char *url, const char *method)
{
	if (c->too_big) {
		sim_note_reject(s, url, c, 413);
		return sim_send_error(s, con, url, 413, 0, "the request body is larger than 1 MiB");
	}
	enum MHD_Result rc;
	if (!sim_gates(s, c, con, url, &rc))
		return rc;

	struct sim_req rq = {.con = con, .method = method, .url = url};
	char path[1024];
	if (strlen(url) >= sizeof path || !sim_split(url, path, sizeof path, &rq))
		return sim_send_error(s, con, url, 404, 0, "no such route");
	if (c->body.len) {
		json_error_t je;
		rq.body = json_loadb(c->body.p, c->body.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
		if (!rq.body) {
			char detail[256];
			snprintf(detail, sizeof detail, "the body is not JSON: %s at %d:%d", je.text, je.line, je.column);
			sim_note_reject(s, url, c, 400);
			return sim_send_error(s, con, url, 400, 0, detail);
		}
	}
	const char *key = s->ops->idempotency && sim_is_write(method)
				  ? MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Idempotency-Key")
				  : NULL;
	rc = sim_run_model(s, &rq, key && *key ? key : NULL);
	json_decref(rq.body);
	return rc;
}

static enum MHD_Result sim_admin_request(struct sl_sim *s, struct sim_conn *c, struct MHD_Connection *con,
					 const char *what, const char *method)
{
	struct sim_resp rp = {.status = 500};
	json_t *body = NULL;
	if (c->too_big)
		return sim_send_problem(con, 413, "the request body is larger than 1 MiB");
	if (c->body.len) {
		body = json_loadb(c->body.p, c->body.len, JSON_DECODE_ANY, NULL);
		if (!body)
			return sim_send_problem(con, 400, "the body is not JSON");
	}
	pthread_mutex_lock(&s->mu);
	sim_admin(s, method, what, body, &rp);
	pthread_mutex_unlock(&s->mu);
	json_decref(body);
	if (!rp.body)
		sim_problem(&rp, 500, NULL, "out of memory");
	enum MHD_Result rc = sim_send_resp(con, &rp);
	sim_resp_free(&rp);
	return rc;
}

static enum MHD_Result sim_on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
				      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct sl_sim *s = cls;
	(void)version;
	struct sim_conn *c = *con_cls;
	if (!c) {
		c = calloc(1, sizeof *c);
		if (!c)
			return MHD_NO;
		sl_buf_init(&c->body, SIM_BODY_MAX);
		*con_cls = c;
		return MHD_YES;
	}
	if (*upload_size) {
		/* Past the cap the rest is read and dropped; 413 at the end. */
		if (sl_buf_add(&c->body, upload, *upload_size) != 0)
			c->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (sl_str_startswith(url, "/_sim/"))
		return sim_admin_request(s, c, con, url + 6, method);
	return sim_vendor_request(s, c, con, url, method);
}

static void sim_on_done(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode t)
{
	(void)cls;
	(void)con;
	(void)t;
	struct sim_conn *c = *con_cls;
	if (c) {
		sl_buf_free(&c->body);
		free(c);
	}
	*con_cls = NULL;
}

/* ---- start / stop ---------------------------------------------------------------------- */

static int sim_check_opts(const struct sl_sim_opts *o, struct sl_err *err)
{
	if (!o->kind)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: kind is required (helpdesk, crm, erp or model)");
	if (o->port < 0 || o->port > 65535)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: port %d is out of range", o->port);
	if (o->rate_per_s < 0 || o->burst < 0 || o->latency_ms < 0 || o->latency_ms > 600000)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: rate, burst and latency must be >= 0");
	const double rates[] = {o->error_rate, o->timeout_rate, o->reset_rate, o->malformed_rate};
	for (size_t i = 0; i < SL_ARRAY_LEN(rates); i++)
		if (!(rates[i] >= 0 && rates[i] <= 1))
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: fault rates must be from 0 to 1");
	return 0;
}

static int sim_listen(struct sl_sim *s, struct sl_err *err)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
	if (inet_pton(AF_INET, s->host, &sa.sin_addr) != 1)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: host '%s' is not an IPv4 address", s->host);
	s->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL, sim_on_request, s,
				     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, sim_on_done, s,
				     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)SIM_THREADS, MHD_OPTION_CONNECTION_LIMIT,
				     (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
	if (!s->daemon)
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "sim: cannot listen on %s:%d", s->host, s->port);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info)
		s->port = info->port;
	return 0;
}

static void sim_free(struct sl_sim *s)
{
	if (s->ops) {
		s->ops->free_fn(s);
		if (s->ops->teardown_fn)
			s->ops->teardown_fn(s);
	}
	json_decref(s->keys);
	json_decref(s->by_route);
	free(s->api_key);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int sl_sim_start(const struct sl_sim_opts *o, struct sl_sim **out, struct sl_err *err)
{
	*out = NULL;
	int rc = sim_check_opts(o, err);
	if (rc)
		return rc;
	struct sl_sim *s = sl_xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	for (size_t k = 0; k < SIM_KINDS && !s->ops; k++) {
		if (strcmp(o->kind, sim_kinds[k].name) == 0) {
			s->kind = (enum sim_kind)k;
			s->kind_name = sim_kinds[k].name;
			s->ops = sim_kinds[k].ops;
		}
	}
	if (!s->ops) {
		sim_free(s);
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "sim: unknown kind '%s' (helpdesk, crm, erp or model)",
				  o->kind);
	}
	if (s->ops->setup_fn && (rc = s->ops->setup_fn(s, o, err)) != 0) {
		sim_free(s);
		return rc;
	}
	snprintf(s->host, sizeof s->host, "%s", o->host ? o->host : "127.0.0.1");
	s->port = o->port;
	s->api_key = o->api_key && *o->api_key ? sl_strdup(o->api_key) : NULL;
	s->rate_per_s = o->rate_per_s;
	s->burst = o->burst > 0 ? o->burst : (int)SL_MAX(1.0, ceil(o->rate_per_s));
	s->seed = o->seed;
	s->start_faults = (struct sim_faults){o->latency_ms, o->error_rate, o->timeout_rate, o->reset_rate,
					      o->malformed_rate, o->drift, 0};
	if (sim_state_reset(s) != 0) {
		sim_free(s);
		return sl_err_set(err, SL_ENOMEM, SL_CLASS_NONE, "sim: out of memory");
	}
	rc = sim_listen(s, err);
	if (rc) {
		sim_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int sl_sim_port(const struct sl_sim *s)
{
	return s ? s->port : 0;
}

void sl_sim_stop(struct sl_sim *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	MHD_stop_daemon(s->daemon);
	sim_free(s);
}
