/*
 * kafka.c: the `kafka` connector type: a Kafka topic read through a
 * consumer group (a trigger source) and written by the built-in action
 * `publish` (an emit target), with librdkafka.
 *
 * Reading: each subscription is one member of the group (subscribe, with
 * automatic offset commits and offset stores off). After the caller has
 * committed the runs a batch started, the batch's next offsets (per
 * partition, the largest acknowledged offset + 1) are committed
 * synchronously. A member that dies leaves its partitions to the others
 * after session_timeout; they resume from the committed offsets, so what
 * the dead member had not committed is consumed again and finds its runs.
 * A message's identity, "kafka:TOPIC:PARTITION:OFFSET", is the same on
 * every delivery. Kafka does not say that a message is a redelivery; the
 * caller sees it as a duplicate (its run exists).
 *
 * Writing: an idempotent producer (enable.idempotence: no duplicates or
 * reordering from its own retries), each publish waiting for its delivery
 * report, with the idempotency key as the message key. The idempotent
 * producer does not cover a step re-run after a crash (a new producer
 * session), so before its first publish the connector reads the keys of
 * the topic's tail (the last dedupe_scan messages of each partition) and
 * skips a publish whose key is there; keys it publishes join that set. A
 * re-run after a crash comes after the restart's scan, so its event is
 * published once. Several processes publishing the same key at once are
 * not covered (the engine never runs one step in two places at once).
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KAFKA_DEFAULT_TIMEOUT_MS 10000
#define KAFKA_DEFAULT_SESSION_MS 10000
#define KAFKA_DEFAULT_SCAN 10000
#define KAFKA_ERRSTR 512
/* Keys remembered for publish dedupe: a re-run comes after a restart (the
 * scan covers it) or soon after the first try, so the newest keys are
 * enough, and memory stays bounded however long the process runs. */
#define KAFKA_KEYS_MAX 200000

struct kafka_conn {
	const char *name;
	char *brokers, *topic, *group;
	char *username, *password; /* password: secret, owned */
	char *mechanism;
	bool tls;
	bool from_start;
	int64_t timeout_ms, session_ms, scan;

	pthread_mutex_t mu; /* guards the producer's creation and the key set */
	rd_kafka_t *producer;
	json_t *published; /* set: keys seen in the topic's tail or published here */
	char **order;      /* the same keys, oldest first (a ring of KAFKA_KEYS_MAX) */
	size_t next;
	bool scanned;
};

struct kafka_sub {
	struct kafka_conn *kc;
	rd_kafka_t *rk;
	rd_kafka_t *lag_rk; /* a client outside the group, for lag queries */
	char *group;
};

/* What a message's handle holds: where to commit after it. */
struct kafka_pos {
	int32_t partition;
	int64_t offset;
};

static const struct sl_conf_key kafka_keys[] = {
	{"brokers", SL_CONF_STRING, true, "bootstrap servers, HOST:PORT[,HOST:PORT...]"},
	{"topic", SL_CONF_STRING, true, "the topic read from and published to"},
	{"group", SL_CONF_STRING, false, "consumer group (default sluice)"},
	{"start", SL_CONF_STRING, false, "where a new group starts: earliest (default) or latest"},
	{"username", SL_CONF_STRING, false, "SASL user name, with password"},
	{"password", SL_CONF_STRING, false, "SASL password: a secret reference (env:NAME or file:PATH)"},
	{"mechanism", SL_CONF_STRING, false, "SASL mechanism: PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512"},
	{"tls", SL_CONF_BOOL, false, "connect with TLS (default false)"},
	{"session_timeout", SL_CONF_DURATION, false, "a member silent this long leaves the group (default 10s)"},
	{"timeout", SL_CONF_DURATION, false, "request and delivery timeout (default 10s)"},
	{"dedupe_scan", SL_CONF_INT, false, "messages per partition read back for publish keys at start (default 10000; 0: none)"},
	{NULL, 0, false, NULL},
};

static const char *const kafka_builtins[] = {SL_STREAM_PUBLISH_ACTION, "write", NULL};

static int kafka_fail(struct sl_err *err, const char *what, rd_kafka_resp_err_t e)
{
	enum sl_class cls = SL_CLASS_TRANSIENT;
	if (e == RD_KAFKA_RESP_ERR__AUTHENTICATION || e == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
	    e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
		cls = SL_CLASS_AUTH;
	else if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR__INVALID_ARG)
		cls = SL_CLASS_PERMANENT;
	sl_err_set(err, SL_EIO, cls, "kafka %s: %s", what, rd_kafka_err2str(e));
	return SL_EIO;
}

/* ---- config --------------------------------------------------------------------------- */

static int kafka_init(struct sl_connector *c, struct sl_conf_ctx *ctx)
{
	int before = ctx->nerrors;
	const json_t *doc = c->config;
	struct kafka_conn *kc = sl_xcalloc(1, sizeof *kc);
	c->priv = kc;
	kc->name = c->name;
	pthread_mutex_init(&kc->mu, NULL);
	kc->published = json_object();
	kc->brokers = sl_strdup(sl_conf_str(doc, "brokers", ""));
	kc->topic = sl_strdup(sl_conf_str(doc, "topic", ""));
	kc->group = sl_strdup(sl_conf_str(doc, "group", "sluice"));
	if (json_is_string(json_object_get(doc, "brokers")) && (!kc->brokers[0] || strchr(kc->brokers, '@')))
		/* Not echoed: '@' may mean credentials in it. */
		sl_conf_error(ctx, "/brokers", "brokers must be HOST:PORT[,HOST:PORT...] (credentials: username, password)");
	if (json_is_string(json_object_get(doc, "topic")) && (!kc->topic[0] || strpbrk(kc->topic, " /,:")))
		sl_conf_error(ctx, "/topic", "topic \"%s\" must be a name: letters, digits, '.', '_' and '-'", kc->topic);
	if (!kc->group[0])
		sl_conf_error(ctx, "/group", "group must not be empty");
	const char *start = sl_conf_str(doc, "start", "earliest");
	if (strcmp(start, "earliest") && strcmp(start, "latest"))
		sl_conf_error(ctx, "/start", "start must be earliest or latest, not \"%s\"", start);
	kc->from_start = strcmp(start, "latest") != 0;
	kc->username = sl_strdup(sl_conf_str(doc, "username", NULL));
	sl_conf_secret(ctx, doc, "", "password", kc->username != NULL, &kc->password);
	if (json_object_get(doc, "password") && !kc->username)
		sl_conf_error(ctx, "/password", "password needs username");
	kc->mechanism = sl_strdup(sl_conf_str(doc, "mechanism", "PLAIN"));
	if (strcmp(kc->mechanism, "PLAIN") && strcmp(kc->mechanism, "SCRAM-SHA-256") &&
	    strcmp(kc->mechanism, "SCRAM-SHA-512"))
		sl_conf_error(ctx, "/mechanism", "mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
	kc->tls = sl_conf_bool(doc, "tls", false);
	kc->timeout_ms = sl_conf_duration(ctx, doc, "", "timeout", KAFKA_DEFAULT_TIMEOUT_MS);
	kc->session_ms = sl_conf_duration(ctx, doc, "", "session_timeout", KAFKA_DEFAULT_SESSION_MS);
	const json_t *scan = json_object_get(doc, "dedupe_scan");
	kc->scan = json_is_integer(scan) ? json_integer_value(scan) : KAFKA_DEFAULT_SCAN;
	if (kc->scan < 0)
		sl_conf_error(ctx, "/dedupe_scan", "dedupe_scan must be >= 0");
	return ctx->nerrors - before;
}

static int kafka_action_init(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
			     const char *pointer)
{
	if (strcmp(a->name, SL_STREAM_PUBLISH_ACTION) != 0) {
		sl_conf_error(ctx, pointer, "a kafka connector has only the action publish, not \"%s\"", a->name);
		return 1;
	}
	return 0;
}

static void kafka_close(struct sl_connector *c)
{
	struct kafka_conn *kc = c->priv;
	if (!kc)
		return;
	if (kc->producer) {
		rd_kafka_flush(kc->producer, (int)kc->timeout_ms);
		rd_kafka_destroy(kc->producer);
	}
	json_decref(kc->published);
	for (size_t i = 0; kc->order && i < KAFKA_KEYS_MAX; i++)
		free(kc->order[i]);
	free(kc->order);
	pthread_mutex_destroy(&kc->mu);
	free(kc->brokers);
	free(kc->topic);
	free(kc->group);
	free(kc->username);
	sl_secret_free(kc->password);
	free(kc->mechanism);
	free(kc);
	c->priv = NULL;
}

/* ---- clients ----------------------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, struct sl_err *err)
{
	char e[KAFKA_ERRSTR];
	if (rd_kafka_conf_set(conf, k, v, e, sizeof e) == RD_KAFKA_CONF_OK)
		return 0;
	/* The value is not echoed: it may be the password. */
	return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "kafka setting %s: %s", k, e);
}

static int conf_setn(rd_kafka_conf_t *conf, const char *k, int64_t v, struct sl_err *err)
{
	char s[32];
	snprintf(s, sizeof s, "%lld", (long long)v);
	return conf_set(conf, k, s, err);
}

/* The settings every client shares: where, and who. */
static rd_kafka_conf_t *base_conf(const struct kafka_conn *kc, struct sl_err *err)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *proto = kc->username ? (kc->tls ? "sasl_ssl" : "sasl_plaintext") : (kc->tls ? "ssl" : "plaintext");
	int rc = conf_set(conf, "bootstrap.servers", kc->brokers, err) ||
		 conf_set(conf, "security.protocol", proto, err) || conf_set(conf, "log_level", "3", err) ||
		 conf_setn(conf, "socket.timeout.ms", kc->timeout_ms, err);
	if (!rc && kc->username)
		rc = conf_set(conf, "sasl.mechanism", kc->mechanism, err) ||
		     conf_set(conf, "sasl.username", kc->username, err) ||
		     conf_set(conf, "sasl.password", kc->password ? kc->password : "", err);
	if (rc) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, struct sl_err *err)
{
	char e[KAFKA_ERRSTR];
	rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof e);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "kafka client: %s", e);
	}
	return rk;
}

/* ---- publish ------------------------------------------------------------------------------ */

struct delivery {
	atomic_bool done;
	rd_kafka_resp_err_t err;
	int32_t partition;
	int64_t offset;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	struct delivery *d = m->_private;
	d->err = m->err;
	d->partition = m->partition;
	d->offset = m->offset;
	atomic_store(&d->done, true);
}

static int producer_open(struct kafka_conn *kc, struct sl_err *err)
{
	if (kc->producer)
		return 0;
	rd_kafka_conf_t *conf = base_conf(kc, err);
	if (!conf)
		return err->code;
	if (conf_set(conf, "enable.idempotence", "true", err) || conf_set(conf, "linger.ms", "0", err) ||
	    conf_setn(conf, "message.timeout.ms", kc->timeout_ms, err)) {
		rd_kafka_conf_destroy(conf);
		return err->code;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	kc->producer = client_new(RD_KAFKA_PRODUCER, conf, err);
	return kc->producer ? 0 : err->code;
}

/* Remembers key (the oldest is forgotten past KAFKA_KEYS_MAX). */
static void remember(struct kafka_conn *kc, const char *key)
{
	if (json_object_get(kc->published, key))
		return;
	if (!kc->order)
		kc->order = sl_xcalloc(KAFKA_KEYS_MAX, sizeof *kc->order);
	char **slot = &kc->order[kc->next];
	if (*slot) {
		json_object_del(kc->published, *slot);
		free(*slot);
	}
	*slot = sl_strdup(key);
	kc->next = (kc->next + 1) % KAFKA_KEYS_MAX;
	json_object_set_new(kc->published, key, json_true());
}

/* Reads the keys of the last kc->scan messages of each partition into
 * kc->published (see the top of the file). */
static int scan_keys(struct kafka_conn *kc, struct sl_err *err)
{
	if (kc->scan == 0)
		return 0;
	rd_kafka_conf_t *conf = base_conf(kc, err);
	if (!conf)
		return err->code;
	if (conf_set(conf, "enable.auto.commit", "false", err) || conf_set(conf, "group.id", "sluice-scan", err)) {
		rd_kafka_conf_destroy(conf);
		return err->code;
	}
	rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf, err);
	if (!rk)
		return err->code;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, kc->topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, (int)kc->timeout_ms);
	rd_kafka_topic_destroy(t);
	int rc = 0;
	if (e) {
		rc = kafka_fail(err, "metadata", e);
		goto out;
	}
	const struct rd_kafka_metadata_topic *mt = md->topic_cnt == 1 ? &md->topics[0] : NULL;
	if (!mt || mt->err) /* no topic yet: nothing was published */
		goto out;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(mt->partition_cnt);
	int64_t *high = sl_xcalloc((size_t)mt->partition_cnt + 1, sizeof *high);
	int open = 0;
	for (int i = 0; i < mt->partition_cnt && !rc; i++) {
		int64_t lo, hi;
		int32_t p = mt->partitions[i].id;
		if ((e = rd_kafka_query_watermark_offsets(rk, kc->topic, p, &lo, &hi, (int)kc->timeout_ms))) {
			rc = kafka_fail(err, "watermarks", e);
			break;
		}
		if (hi <= lo)
			continue;
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, kc->topic, p);
		tp->offset = hi - kc->scan > lo ? hi - kc->scan : lo;
		high[l->cnt - 1] = hi;
		open++;
	}
	if (!rc && open && (e = rd_kafka_assign(rk, l)))
		rc = kafka_fail(err, "assign", e);
	int64_t deadline = sl_mono_ms() + kc->timeout_ms * 3;
	while (!rc && open > 0 && sl_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (!m->err && m->key) {
			char *k = sl_strndup(m->key, m->key_len);
			remember(kc, k);
			free(k);
		}
		for (int i = 0; !m->err && i < l->cnt; i++)
			if (l->elems[i].partition == m->partition && m->offset + 1 >= high[i] && high[i] >= 0) {
				high[i] = -1; /* this partition is read up to where it was */
				open--;
			}
		rd_kafka_message_destroy(m);
	}
	if (!rc && open > 0)
		rc = sl_err_set(err, SL_ETIMEOUT, SL_CLASS_TRANSIENT, "kafka: reading back %s's published keys timed out",
				kc->topic);
	free(high);
	rd_kafka_topic_partition_list_destroy(l);
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc;
}

/* Whether key was published (and, when not, nothing else to do but send). */
static int publish_prepare(struct kafka_conn *kc, const char *key, bool *seen, struct sl_err *err)
{
	pthread_mutex_lock(&kc->mu);
	int rc = producer_open(kc, err);
	if (!rc && !kc->scanned && !(rc = scan_keys(kc, err)))
		kc->scanned = true;
	*seen = !rc && key && json_object_get(kc->published, key) != NULL;
	pthread_mutex_unlock(&kc->mu);
	return rc;
}

static int kafka_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		      struct sl_call_result *res, struct sl_err *err)
{
	struct kafka_conn *kc = c->priv;
	bool seen = false;
	int rc = publish_prepare(kc, call->idempotency_key, &seen, err);
	if (rc)
		return rc;
	if (seen) {
		res->output = json_pack("{s:s, s:b}", "topic", kc->topic, "duplicate", 1);
		return 0;
	}
	size_t len;
	char *body = sl_conn__publish_body(call, &len);
	struct delivery d = {.err = RD_KAFKA_RESP_ERR_NO_ERROR};
	const char *key = call->idempotency_key;
	rd_kafka_resp_err_t e = rd_kafka_producev(
		kc->producer, RD_KAFKA_V_TOPIC(kc->topic), RD_KAFKA_V_VALUE(body, len),
		RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
	free(body);
	if (e)
		return kafka_fail(err, "produce", e);
	/* Delivery reports are served by whichever caller polls: each waits for
	 * its own (message.timeout.ms bounds the wait). */
	while (!atomic_load(&d.done))
		rd_kafka_poll(kc->producer, 1);
	if (d.err)
		return kafka_fail(err, "delivery", d.err);
	if (key) {
		pthread_mutex_lock(&kc->mu);
		remember(kc, key);
		pthread_mutex_unlock(&kc->mu);
	}
	res->output = json_pack("{s:s, s:i, s:I}", "topic", kc->topic, "partition", (int)d.partition, "offset",
				(json_int_t)d.offset);
	return 0;
}

/* ---- subscriptions --------------------------------------------------------------------------- */

static int kafka_sub_open(struct sl_connector *c, const struct sl_stream_sub_opts *o, void **out,
			  struct sl_err *err)
{
	struct kafka_sub *s = sl_xcalloc(1, sizeof *s);
	s->kc = c->priv;
	s->group = sl_strdup(o->group ? o->group : s->kc->group);
	*out = s;
	rd_kafka_conf_t *conf = base_conf(s->kc, err);
	if (!conf)
		return err->code;
	/* Offsets move only by the explicit commit after the runs are durable. */
	if (conf_set(conf, "group.id", s->group, err) || conf_set(conf, "enable.auto.commit", "false", err) ||
	    conf_set(conf, "enable.auto.offset.store", "false", err) ||
	    conf_set(conf, "auto.offset.reset", s->kc->from_start ? "earliest" : "latest", err) ||
	    conf_setn(conf, "session.timeout.ms", s->kc->session_ms, err) ||
	    conf_setn(conf, "heartbeat.interval.ms", s->kc->session_ms / 3 > 0 ? s->kc->session_ms / 3 : 1, err) ||
	    conf_set(conf, "client.id", o->consumer, err)) {
		rd_kafka_conf_destroy(conf);
		return err->code;
	}
	s->rk = client_new(RD_KAFKA_CONSUMER, conf, err);
	if (!s->rk)
		return err->code;
	rd_kafka_poll_set_consumer(s->rk);
	rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, s->kc->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(s->rk, t);
	rd_kafka_topic_partition_list_destroy(t);
	return e ? kafka_fail(err, "subscribe", e) : 0;
}

static void kafka_sub_close(void *sub)
{
	struct kafka_sub *s = sub;
	if (s->rk) {
		rd_kafka_consumer_close(s->rk); /* leaves the group at once: the others take over sooner */
		rd_kafka_destroy(s->rk);
	}
	if (s->lag_rk)
		rd_kafka_destroy(s->lag_rk);
	free(s->group);
	free(s);
}

static void take_message(struct kafka_sub *s, rd_kafka_message_t *m, struct sl_stream_msg *out)
{
	char at[48];
	snprintf(at, sizeof at, "%d:%lld", (int)m->partition, (long long)m->offset);
	out->identity = sl_stream_identity("kafka", s->kc->topic, at);
	out->data = sl_stream_body_json(m->payload ? m->payload : "", m->len);
	struct kafka_pos *pos = sl_xcalloc(1, sizeof *pos);
	pos->partition = m->partition;
	pos->offset = m->offset;
	out->handle = pos;
}

static int kafka_fetch(void *sub, size_t max, int64_t wait_ms, struct sl_stream_msg *out, size_t *n,
		       struct sl_err *err)
{
	struct kafka_sub *s = sub;
	if (!s->rk)
		return sl_err_set(err, SL_EIO, SL_CLASS_TRANSIENT, "kafka: no consumer");
	int64_t wait = wait_ms > 0 ? wait_ms : 1;
	while (*n < max) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, (int)wait);
		if (!m)
			break;
		wait = 0; /* after the first, take only what is already here */
		rd_kafka_resp_err_t e = m->err;
		if (!e)
			take_message(s, m, &out[(*n)++]);
		rd_kafka_message_destroy(m);
		if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			continue; /* not a failure: the end for now, or a topic not made yet */
		if (e)
			return *n ? 0 : kafka_fail(err, "consume", e);
	}
	return 0;
}

static int kafka_ack(void *sub, struct sl_stream_msg *m, size_t n, struct sl_err *err)
{
	struct kafka_sub *s = sub;
	if (!s->rk)
		return sl_err_set(err, SL_EIO, SL_CLASS_TRANSIENT, "kafka: no consumer");
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++) {
		const struct kafka_pos *pos = m[i].handle;
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, s->kc->topic, pos->partition);
		if (!tp)
			tp = rd_kafka_topic_partition_list_add(l, s->kc->topic, pos->partition);
		if (pos->offset + 1 > tp->offset)
			tp->offset = pos->offset + 1; /* the next to read */
	}
	rd_kafka_resp_err_t e = rd_kafka_commit(s->rk, l, 0);
	rd_kafka_topic_partition_list_destroy(l);
	return e ? kafka_fail(err, "commit", e) : 0;
}

/* The group's lag over every partition of the topic: high watermark minus
 * committed offset (the low watermark when nothing is committed yet). */
static int kafka_lag(void *sub, int64_t *lag, struct sl_err *err)
{
	struct kafka_sub *s = sub;
	if (!s->lag_rk) {
		/* The group member's own handle answers these slowly while it
		 * fetches (seconds on the mock); a plain client does not. */
		rd_kafka_conf_t *conf = base_conf(s->kc, err);
		if (!conf || conf_set(conf, "group.id", s->group, err)) {
			if (conf)
				rd_kafka_conf_destroy(conf);
			return err->code;
		}
		if (!(s->lag_rk = client_new(RD_KAFKA_CONSUMER, conf, err)))
			return err->code;
	}
	rd_kafka_t *rk = s->lag_rk;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, s->kc->topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, (int)s->kc->timeout_ms);
	rd_kafka_topic_destroy(t);
	if (e)
		return kafka_fail(err, "metadata", e);
	int rc = 0;
	if (md->topic_cnt != 1 || md->topics[0].err) {
		*lag = 0; /* no topic: nothing waits */
		rd_kafka_metadata_destroy(md);
		return 0;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(l, s->kc->topic, md->topics[0].partitions[i].id);
	rd_kafka_metadata_destroy(md);
	if ((e = rd_kafka_committed(rk, l, (int)s->kc->timeout_ms)))
		rc = kafka_fail(err, "committed offsets", e);
	int64_t sum = 0;
	for (int i = 0; !rc && i < l->cnt; i++) {
		int64_t lo, hi;
		if ((e = rd_kafka_query_watermark_offsets(rk, s->kc->topic, l->elems[i].partition, &lo, &hi,
							   (int)s->kc->timeout_ms))) {
			rc = kafka_fail(err, "watermarks", e);
			break;
		}
		int64_t from = l->elems[i].offset >= 0 ? l->elems[i].offset : lo;
		sum += hi > from ? hi - from : 0;
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (!rc)
		*lag = sum;
	return rc;
}

static void kafka_msg_free(struct sl_stream_msg *m)
{
	free(m->handle);
	m->handle = NULL;
}

static const struct sl_stream_ops kafka_stream_ops = {
	.sub_open_fn = kafka_sub_open,
	.fetch_fn = kafka_fetch,
	.ack_fn = kafka_ack,
	.lag_fn = kafka_lag,
	.msg_free_fn = kafka_msg_free,
	.sub_close_fn = kafka_sub_close,
};

const struct sl_connector_type sl_conn__kafka_type = {
	.name = "kafka",
	.description = "a Kafka topic: consumer-group trigger source (offsets committed after the run) and "
		       "idempotent publish target",
	.keys = kafka_keys,
	.action_keys = NULL,
	.builtin_actions = kafka_builtins,
	.init_fn = kafka_init,
	.action_init_fn = kafka_action_init,
	.call_fn = kafka_call,
	.poll_fn = NULL,
	.action_free_fn = NULL,
	.close_fn = kafka_close,
	.stream = &kafka_stream_ops,
};
