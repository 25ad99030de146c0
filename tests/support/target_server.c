/*
 * target_server: a small HTTP "system of record" for integration and crash
 * tests. It applies each write once per Idempotency-Key and can prove it:
 * every effect is appended to a state file and fsync'd before the answer,
 * so a kill -9 of Sluice (or of this server) can never make it forget an
 * effect it acknowledged, and /__stats says how many effects, replays and
 * doubled effects there were.
 *
 *   target_server --port N [--state FILE] [--fail-rate P] [--seed N]
 *                 [--latency-ms N] [--status-sequence 503,503,200]
 *                 [--require-bearer TOKEN]
 *
 * Prints "listening on 127.0.0.1:PORT" (port 0 picks a free one) and runs
 * until SIGINT or SIGTERM. See docs/internals/connector.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define REQ_BODY_MAX (1024 * 1024) /* requests larger than this get 413 */
#define TICKETS_MAX 1000000        /* effects kept; past it writes get 507 */
#define SEQUENCE_MAX 1024
#define STATE_LINE_MAX (REQ_BODY_MAX + 64 * 1024)

struct ticket {
	off_t off; /* its line in the state file */
	size_t len;
};

static struct {
	/* options */
	int port;
	const char *state_path;
	double fail_rate;
	uint64_t seed;
	int64_t latency_ms;
	int sequence[SEQUENCE_MAX];
	size_t nsequence;
	const char *bearer;

	pthread_mutex_t mu; /* guards everything below */
	int state_fd;
	off_t state_size;
	json_t *keys; /* Idempotency-Key -> ticket index */
	struct ticket *tickets;
	size_t ntickets, cap;
	size_t next_status; /* position in sequence */
	uint64_t rng;
	uint64_t effects, replays, unkeyed, duplicates_applied, replay_mismatches;
} g = {.seed = 1, .state_fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- options ----------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "usage: target_server --port N [--state FILE] [--fail-rate P] [--seed N]\n"
		     "                     [--latency-ms N] [--status-sequence 503,503,200]\n"
		     "                     [--require-bearer TOKEN]\n");
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	return sl_parse_i64(s, out) == 0 && *out >= lo && *out <= hi ? 0 : -1;
}

static int parse_sequence(const char *s)
{
	while (*s) {
		size_t n = strcspn(s, ",");
		char tok[16];
		int64_t v;
		if (n == 0 || n >= sizeof tok || g.nsequence == SEQUENCE_MAX)
			return -1;
		memcpy(tok, s, n);
		tok[n] = '\0';
		if (parse_int(tok, 100, 599, &v) != 0)
			return -1;
		g.sequence[g.nsequence++] = (int)v;
		s += n + (s[n] == ',');
	}
	return g.nsequence ? 0 : -1;
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (!v)
			return -1;
		i++;
		if (strcmp(a, "--port") == 0 && parse_int(v, 0, 65535, &n) == 0)
			g.port = (int)n;
		else if (strcmp(a, "--state") == 0)
			g.state_path = v;
		else if (strcmp(a, "--seed") == 0 && parse_int(v, 0, INT64_MAX, &n) == 0)
			g.seed = (uint64_t)n;
		else if (strcmp(a, "--latency-ms") == 0 && parse_int(v, 0, 600000, &n) == 0)
			g.latency_ms = n;
		else if (strcmp(a, "--status-sequence") == 0 && parse_sequence(v) == 0)
			;
		else if (strcmp(a, "--require-bearer") == 0 && *v)
			g.bearer = v;
		else if (strcmp(a, "--fail-rate") == 0) {
			char *end = NULL;
			g.fail_rate = strtod(v, &end);
			if (!end || *end || g.fail_rate < 0 || g.fail_rate > 1)
				return -1;
		} else
			return -1;
	}
	return 0;
}

/* xorshift64*: deterministic per --seed, so a failing run can be repeated. */
static double next_random(void)
{
	g.rng ^= g.rng >> 12;
	g.rng ^= g.rng << 25;
	g.rng ^= g.rng >> 27;
	return (double)((g.rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* ---- the state file ------------------------------------------------------------------ */

static int add_ticket(off_t off, size_t len)
{
	if (g.ntickets == TICKETS_MAX)
		return -1;
	if (g.ntickets == g.cap) {
		g.cap = g.cap ? g.cap * 2 : 1024;
		g.tickets = sl_xrealloc(g.tickets, g.cap * sizeof *g.tickets);
	}
	g.tickets[g.ntickets].off = off;
	g.tickets[g.ntickets].len = len;
	g.ntickets++;
	return 0;
}

/* Counts one state line: an effect, keyed or not. A key seen before would
 * be an effect applied twice, which /__stats reports. */
static void count_effect(const char *key)
{
	g.effects++;
	if (!key) {
		g.unkeyed++;
		return;
	}
	if (json_object_get(g.keys, key))
		g.duplicates_applied++;
	else
		json_object_set_new(g.keys, key, json_integer((json_int_t)g.ntickets - 1));
}

/* Reloads the effects of earlier runs. A last line without its newline was
 * cut by a crash before its fsync, so it was never answered: drop it. */
static int state_load(void)
{
	FILE *f = fdopen(dup(g.state_fd), "r");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t off = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break;
		json_t *rec = json_loadb(line, (size_t)n, 0, NULL);
		if (rec && add_ticket(off, (size_t)n) == 0)
			count_effect(json_string_value(json_object_get(rec, "key")));
		json_decref(rec);
		off += n;
	}
	free(line);
	fclose(f);
	struct stat st;
	if (fstat(g.state_fd, &st) == 0 && st.st_size > off) {
		if (ftruncate(g.state_fd, off) != 0)
			return -1;
		fprintf(stderr, "target_server: dropped %lld bytes of a cut last line\n",
			(long long)(st.st_size - off));
	}
	g.state_size = off;
	return 0;
}

static int state_open(void)
{
	if (g.state_path) {
		g.state_fd = open(g.state_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	} else {
		/* Without --state the effects still go to a file (unlinked), so
		 * replays read their first response back the same way. */
		char tmp[] = "/tmp/target_server_XXXXXX";
		g.state_fd = mkostemp(tmp, O_APPEND | O_CLOEXEC);
		if (g.state_fd >= 0)
			unlink(tmp);
	}
	if (g.state_fd < 0) {
		fprintf(stderr, "target_server: %s: %s\n", g.state_path ? g.state_path : "temp file", strerror(errno));
		return -1;
	}
	return state_load();
}

/* The stored line of ticket i, parsed; NULL on a read error. */
static json_t *ticket_load(size_t i)
{
	const struct ticket *t = &g.tickets[i];
	char *buf = sl_xmalloc(t->len + 1);
	ssize_t n = pread(g.state_fd, buf, t->len, t->off);
	json_t *rec = n == (ssize_t)t->len ? json_loadb(buf, t->len, 0, NULL) : NULL;
	free(buf);
	return rec;
}

/* Appends one effect and makes it durable before anyone is told. */
static int state_append(json_t *rec)
{
	char *s = json_dumps(rec, JSON_COMPACT);
	if (!s)
		return -1;
	size_t len = strlen(s);
	s[len] = '\n'; /* json_dumps' NUL becomes the line end */
	ssize_t w = write(g.state_fd, s, len + 1);
	free(s);
	if (w != (ssize_t)(len + 1) || fdatasync(g.state_fd) != 0) {
		if (ftruncate(g.state_fd, g.state_size) != 0)
			fprintf(stderr, "target_server: cannot undo a failed write: %s\n", strerror(errno));
		return -1;
	}
	if (add_ticket(g.state_size, len + 1) != 0)
		return -1;
	g.state_size += (off_t)(len + 1);
	return 0;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

struct req {
	bool started, too_big;
	struct sl_buf body;
};

static enum MHD_Result respond(struct MHD_Connection *con, unsigned status, json_t *v, bool retry_after)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
	struct MHD_Response *r =
		MHD_create_response_from_buffer(s ? strlen(s) : 0, s ? s : (char *)"", MHD_RESPMEM_MUST_COPY);
	free(s);
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", "0");
	enum MHD_Result rc = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result respond_error(struct MHD_Connection *con, unsigned status, const char *msg)
{
	return respond(con, status, json_pack("{s:s}", "error", msg), status == 503 || status == 429);
}

static json_t *stats_json(void)
{
	pthread_mutex_lock(&g.mu);
	json_t *v = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "effects", (json_int_t)g.effects, "replays",
			      (json_int_t)g.replays, "unkeyed", (json_int_t)g.unkeyed, "keys_distinct",
			      (json_int_t)json_object_size(g.keys), "duplicates_applied",
			      (json_int_t)g.duplicates_applied, "replay_mismatches", (json_int_t)g.replay_mismatches);
	pthread_mutex_unlock(&g.mu);
	return v;
}

static enum MHD_Result get_ticket(struct MHD_Connection *con, const char *id)
{
	int64_t n;
	if (!sl_str_startswith(id, "tkt_") || sl_parse_i64(id + 4, &n) != 0 || n < 1)
		return respond_error(con, 404, "no such ticket");
	pthread_mutex_lock(&g.mu);
	json_t *rec = (size_t)n <= g.ntickets ? ticket_load((size_t)n - 1) : NULL;
	pthread_mutex_unlock(&g.mu);
	return rec ? respond(con, 200, rec, false) : respond_error(con, 404, "no such ticket");
}

static bool authorized(struct MHD_Connection *con)
{
	if (!g.bearer)
		return true;
	const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
	char want[1024];
	snprintf(want, sizeof want, "Bearer %s", g.bearer);
	return h && strlen(h) == strlen(want) && sl_ct_equal(h, want, strlen(want));
}

/* The next injected status, or 0 once the sequence is used up. */
static int injected_status(void)
{
	int st = 0;
	pthread_mutex_lock(&g.mu);
	if (g.next_status < g.nsequence)
		st = g.sequence[g.next_status++];
	else if (g.fail_rate > 0 && next_random() < g.fail_rate)
		st = 503;
	pthread_mutex_unlock(&g.mu);
	return st;
}

/* Applies a write once per key; a repeated key gets the first answer again.
 * Returns the response body (owned) and sets *status; NULL with *status
 * set on failure. */
/* What a request says about where it comes from (recorded with its effect,
 * so a test can follow a correlation id into the system of record). */
struct origin {
	const char *ctype, *corr, *traceparent;
};

static json_t *apply_effect(const char *method, const char *path, const char *key, const struct origin *from,
			    json_t *body, unsigned *status)
{
	unsigned ok = strcmp(method, "DELETE") == 0 ? 200 : 201;
	json_t *resp = NULL;
	pthread_mutex_lock(&g.mu);
	json_t *seen = key ? json_object_get(g.keys, key) : NULL;
	if (seen) {
		json_t *rec = ticket_load((size_t)json_integer_value(seen));
		g.replays++;
		if (rec && !json_equal(json_object_get(rec, "body"), body))
			g.replay_mismatches++;
		if (rec) {
			const char *first = json_string_value(json_object_get(rec, "method"));
			ok = first && strcmp(first, "DELETE") == 0 ? 200 : 201;
			resp = json_pack("{s:O, s:O}", "id", json_object_get(rec, "id"), "received",
					 json_object_get(rec, "body"));
		}
		json_decref(rec);
		*status = resp ? ok : 500;
	} else if (g.ntickets == TICKETS_MAX) {
		*status = 507;
	} else {
		char id[32];
		snprintf(id, sizeof id, "tkt_%zu", g.ntickets + 1);
		json_t *rec = json_pack("{s:s, s:s?, s:s, s:s, s:O, s:s?, s:s?, s:s?}", "id", id, "key", key, "method",
					method, "path", path, "body", body, "content_type", from->ctype, "correlation_id",
					from->corr, "traceparent", from->traceparent);
		if (rec && state_append(rec) == 0) {
			count_effect(key);
			resp = json_pack("{s:s, s:O}", "id", id, "received", body);
			*status = ok;
		} else {
			*status = 500;
		}
		json_decref(rec);
	}
	pthread_mutex_unlock(&g.mu);
	return resp;
}

static enum MHD_Result handle_write(struct MHD_Connection *con, struct req *r, const char *method, const char *path)
{
	int inj = injected_status();
	if (inj && (inj < 200 || inj > 299))
		return respond_error(con, (unsigned)inj, "injected failure");
	json_t *body = json_null();
	if (r->body.len) {
		json_decref(body);
		body = json_loadb(r->body.p, r->body.len, JSON_DECODE_ANY, NULL);
		if (!body)
			return respond_error(con, 400, "the body is not JSON");
	}
	const char *key = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Idempotency-Key");
	unsigned status = 500;
	struct origin from = {
		.ctype = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Content-Type"),
		.corr = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Correlation-Id"),
		.traceparent = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "traceparent"),
	};
	json_t *resp = apply_effect(method, path, key && *key ? key : NULL, &from, body, &status);
	json_decref(body);
	/* After the effect, before the answer: a client that times out here has
	 * caused an effect it does not know about, the case keys exist for. */
	if (g.latency_ms > 0)
		usleep((useconds_t)(g.latency_ms * 1000));
	if (!resp)
		return respond_error(con, status, status == 507 ? "too many effects" : "cannot record the effect");
	return respond(con, status, resp, false);
}

static enum MHD_Result route(struct MHD_Connection *con, struct req *r, const char *method, const char *path)
{
	if (strcmp(method, "GET") == 0 && strcmp(path, "/__stats") == 0)
		return respond(con, 200, stats_json(), false);
	if (r->too_big)
		return respond_error(con, 413, "request body larger than 1 MiB");
	if (!authorized(con))
		return respond_error(con, 401, "unauthorized");
	bool write = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0 ||
		     strcmp(method, "DELETE") == 0;
	if (write)
		return handle_write(con, r, method, path);
	if (g.latency_ms > 0)
		usleep((useconds_t)(g.latency_ms * 1000));
	if (strcmp(method, "GET") == 0 && sl_str_startswith(path, "/tickets/"))
		return get_ticket(con, path + 9);
	if (strcmp(method, "GET") == 0)
		return respond_error(con, 404, "not found");
	return respond_error(con, 405, "method not allowed");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)version;
	struct req *r = *con_cls;
	if (!r) {
		r = sl_xcalloc(1, sizeof *r);
		sl_buf_init(&r->body, REQ_BODY_MAX);
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		/* Past the cap the rest is read and dropped; 413 at the end. */
		if (sl_buf_add(&r->body, upload, *upload_size) != 0)
			r->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	return route(con, r, method, url);
}

static void on_done(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode t)
{
	(void)cls;
	(void)con;
	(void)t;
	struct req *r = *con_cls;
	if (r) {
		sl_buf_free(&r->body);
		free(r);
	}
	*con_cls = NULL;
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) != 0) {
		usage(stderr);
		return 2;
	}
	g.rng = g.seed * 0x9E3779B97F4A7C15ULL + 1;
	g.keys = json_object();
	if (state_open() != 0)
		return 1;
	/* Block the stop signals before any thread starts, so that only
	 * sigwait below receives them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL, NULL,
		on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
		MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "target_server: cannot listen on 127.0.0.1:%d\n", g.port);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("listening on 127.0.0.1:%u\n", info ? (unsigned)info->port : (unsigned)g.port);
	fflush(stdout);

	int sig = 0;
	sigwait(&sigs, &sig);
	MHD_stop_daemon(d);
	close(g.state_fd);
	json_decref(g.keys);
	free(g.tickets);
	return 0;
}
