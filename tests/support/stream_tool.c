/*
 * stream_tool: the stream tests' independent client (it does not use
 * Sluice's connectors, so a test checks them against the libraries' own
 * view), and the host of librdkafka's mock cluster.
 *
 *   stream_tool nats-pub URL STREAM SUBJECT FROM TO    publish {"n":i}, FROM..TO, each acked by JetStream
 *   stream_tool nats-dump URL STREAM SUBJECT            print every message's data, one per line
 *   stream_tool kafka-mock BROKERS TOPIC:PARTS,...      host a mock cluster with those topics; print "bootstrap HOST:PORT,..."
 *   stream_tool kafka-pub BOOTSTRAP TOPIC FROM TO       produce {"n":i}, FROM..TO (idempotent producer)
 *   stream_tool kafka-dump BOOTSTRAP TOPIC              print every message's value, one per line
 *   stream_tool kafka-lag BOOTSTRAP TOPIC GROUP         print the group's lag: high watermarks - committed
 *
 * The mock cluster lives inside the process that creates it, so a test
 * runs this tool as that process and points `sluice serve` at the
 * bootstrap servers it prints (loopback listeners any client can reach).
 */
#include <nats/nats.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: stream_tool nats-pub|nats-dump|kafka-mock|kafka-pub|kafka-dump|kafka-lag ...\n");
	return 2;
}

static int nats_die(const char *what, natsStatus s)
{
	fprintf(stderr, "stream_tool: %s: %s: %s\n", what, natsStatus_GetText(s), nats_GetLastError(NULL));
	return 1;
}

static int nats_open(const char *url, const char *stream, const char *subject, natsConnection **nc, jsCtx **js)
{
	natsStatus s = natsConnection_ConnectTo(nc, url);
	if (s != NATS_OK)
		return nats_die("connect", s);
	if ((s = natsConnection_JetStream(js, *nc, NULL)) != NATS_OK)
		return nats_die("jetstream", s);
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	if (js_GetStreamInfo(&si, *js, stream, NULL, &jerr) == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	const char *subjects[] = {subject};
	sc.Name = stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	s = js_AddStream(&si, *js, &sc, NULL, &jerr);
	if (s != NATS_OK && jerr != JSStreamNameExistErr)
		return nats_die("add stream", s);
	jsStreamInfo_Destroy(si);
	return 0;
}

static int nats_pub(char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (nats_open(argv[0], argv[1], argv[2], &nc, &js))
		return 1;
	long from = strtol(argv[3], NULL, 10), to = strtol(argv[4], NULL, 10);
	for (long i = from; i <= to; i++) {
		char body[64];
		int len = snprintf(body, sizeof body, "{\"n\":%ld}", i);
		/* async with a bounded window, then one wait: fast, and every publish is acked */
		natsStatus s = js_PublishAsync(js, argv[2], body, len, NULL);
		if (s != NATS_OK)
			return nats_die("publish", s);
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 30000;
	natsStatus s = js_PublishAsyncComplete(js, &po);
	if (s != NATS_OK)
		return nats_die("publish complete", s);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}

static int nats_dump(char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	if (nats_open(argv[0], argv[1], argv[2], &nc, &js))
		return 1;
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = argv[1];
	so.Config.AckPolicy = js_AckNone;
	so.Config.DeliverPolicy = js_DeliverAll;
	char durable[64];
	snprintf(durable, sizeof durable, "dump%ld", (long)getpid());
	jsErrCode jerr = 0;
	natsStatus s = js_PullSubscribe(&sub, js, argv[2], durable, NULL, &so, &jerr);
	if (s != NATS_OK)
		return nats_die("subscribe", s);
	for (;;) {
		natsMsgList list = {0};
		s = natsSubscription_Fetch(&list, sub, 256, 1000, &jerr);
		if (s == NATS_TIMEOUT)
			break;
		if (s != NATS_OK)
			return nats_die("fetch", s);
		for (int i = 0; i < list.Count; i++)
			printf("%.*s\n", natsMsg_GetDataLength(list.Msgs[i]), natsMsg_GetData(list.Msgs[i]));
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Unsubscribe(sub); /* deletes the durable made for this dump */
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}

/* ---- Kafka ------------------------------------------------------------------------------ */

static rd_kafka_conf_t *kconf(const char *bootstrap)
{
	char e[512];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	if (bootstrap && rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, e, sizeof e) != RD_KAFKA_CONF_OK)
		fprintf(stderr, "stream_tool: %s\n", e);
	return c;
}

static void kset(rd_kafka_conf_t *c, const char *k, const char *v)
{
	char e[512];
	if (rd_kafka_conf_set(c, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "stream_tool: %s=%s: %s\n", k, v, e);
		exit(1);
	}
}

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int kafka_mock(char **argv)
{
	char e[512];
	rd_kafka_conf_t *c = kconf(NULL);
	kset(c, "test.mock.num.brokers", argv[0]);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
	if (!rk) {
		fprintf(stderr, "stream_tool: %s\n", e);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
	if (!mc) {
		fprintf(stderr, "stream_tool: no mock cluster\n");
		return 1;
	}
	char *topics = argv[1];
	for (char *tok = strtok(topics, ","); tok; tok = strtok(NULL, ",")) {
		char *colon = strchr(tok, ':');
		int parts = colon ? (int)strtol(colon + 1, NULL, 10) : 1;
		if (colon)
			*colon = 0;
		if (rd_kafka_mock_topic_create(mc, tok, parts > 0 ? parts : 1, 1)) {
			fprintf(stderr, "stream_tool: cannot create topic %s\n", tok);
			return 1;
		}
	}
	printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	while (!stop)
		pause();
	rd_kafka_destroy(rk);
	return 0;
}

static int kafka_pub(char **argv)
{
	char e[512];
	rd_kafka_conf_t *c = kconf(argv[0]);
	kset(c, "enable.idempotence", "true");
	kset(c, "linger.ms", "5");
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof e);
	if (!rk) {
		fprintf(stderr, "stream_tool: %s\n", e);
		return 1;
	}
	long from = strtol(argv[2], NULL, 10), to = strtol(argv[3], NULL, 10);
	for (long i = from; i <= to; i++) {
		char body[64];
		int len = snprintf(body, sizeof body, "{\"n\":%ld}", i);
		rd_kafka_resp_err_t err;
		while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[1]), RD_KAFKA_V_VALUE(body, (size_t)len),
						RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
		       RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		if (err) {
			fprintf(stderr, "stream_tool: produce: %s\n", rd_kafka_err2str(err));
			return 1;
		}
		rd_kafka_poll(rk, 0);
	}
	if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "stream_tool: flush timed out\n");
		return 1;
	}
	rd_kafka_destroy(rk);
	return 0;
}

static int kafka_dump(char **argv)
{
	char e[512], group[64];
	snprintf(group, sizeof group, "dump%ld", (long)getpid());
	rd_kafka_conf_t *c = kconf(argv[0]);
	kset(c, "group.id", group);
	kset(c, "auto.offset.reset", "earliest");
	kset(c, "enable.auto.commit", "false");
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
	if (!rk) {
		fprintf(stderr, "stream_tool: %s\n", e);
		return 1;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, argv[1], RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, t);
	rd_kafka_topic_partition_list_destroy(t);
	int idle = 0, got = 0;
	/* until 3 s pass without a message once some came (10 s before the first) */
	while (idle < (got ? 30 : 100)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m) {
			idle++;
			continue;
		}
		if (!m->err) {
			printf("%.*s\n", (int)m->len, (const char *)m->payload);
			got = 1;
			idle = 0;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return 0;
}

static int kafka_lag(char **argv)
{
	char e[512];
	rd_kafka_conf_t *c = kconf(argv[0]);
	kset(c, "group.id", argv[2]);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
	if (!rk) {
		fprintf(stderr, "stream_tool: %s\n", e);
		return 1;
	}
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *tp = rd_kafka_topic_new(rk, argv[1], NULL);
	if (rd_kafka_metadata(rk, 0, tp, &md, 5000) || md->topic_cnt != 1) {
		fprintf(stderr, "stream_tool: no metadata for %s\n", argv[1]);
		return 1;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(l, argv[1], md->topics[0].partitions[i].id);
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(tp);
	if (rd_kafka_committed(rk, l, 5000)) {
		fprintf(stderr, "stream_tool: committed offsets unknown\n");
		return 1;
	}
	long long lag = 0;
	for (int i = 0; i < l->cnt; i++) {
		int64_t lo, hi;
		if (rd_kafka_query_watermark_offsets(rk, argv[1], l->elems[i].partition, &lo, &hi, 5000))
			return 1;
		lag += hi - (l->elems[i].offset >= 0 ? l->elems[i].offset : lo);
	}
	printf("%lld\n", lag);
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;
		int (*fn)(char **argv);
	} cmds[] = {
		{"nats-pub", 5, nats_pub},   {"nats-dump", 3, nats_dump}, {"kafka-mock", 2, kafka_mock},
		{"kafka-pub", 4, kafka_pub}, {"kafka-dump", 2, kafka_dump}, {"kafka-lag", 3, kafka_lag},
	};
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return argc - 2 == cmds[i].nargs ? cmds[i].fn(argv + 2) : usage();
	return usage();
}
