/* test_ssrf.c: outbound safety of the http connector (issue 6 point 7).
 *
 * A counting TCP listener on 127.0.0.1 (and ::1 when there is one) stands
 * for an internal service: every URL and encoding below that would reach it
 * (or a private, link-local or metadata address) must be refused before a
 * connection is made, with the refusal as the error (never a timeout or a
 * "connection refused"), and the listener must see no connection at all.
 * An in-process HTTP server on 127.0.0.1 answers the allowed cases and
 * serves redirects to forbidden places. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connector/connector.h"
#include "util/util.h"

/* ---- the counting listener ("the internal service") ------------------------------- */

static int lfd4 = -1, lfd6 = -1;
static int lport;
static atomic_int accepted;
static atomic_bool lstop;
static pthread_t lthread;

static void *listener_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&lstop)) {
		struct pollfd p[2] = {{.fd = lfd4, .events = POLLIN}, {.fd = lfd6, .events = POLLIN}};
		if (poll(p, lfd6 >= 0 ? 2 : 1, 50) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & POLLIN))
				continue;
			int c = accept(p[i].fd, NULL, NULL);
			if (c >= 0) {
				atomic_fetch_add(&accepted, 1);
				close(c);
			}
		}
	}
	return NULL;
}

static void listener_start(void)
{
	lfd4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd4 >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	assert_int_equal(bind(lfd4, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(lfd4, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(listen(lfd4, 64), 0);
	lport = ntohs(sa.sin_port);
	/* The same port on ::1, so that [::1] and localhost-over-IPv6 would
	 * land here too; a host without IPv6 loopback just skips it. */
	lfd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd6 >= 0) {
		struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)lport)};
		s6.sin6_addr = in6addr_loopback;
		int one = 1;
		setsockopt(lfd6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (bind(lfd6, (struct sockaddr *)&s6, sizeof s6) != 0 || listen(lfd6, 64) != 0) {
			close(lfd6);
			lfd6 = -1;
		}
	}
	atomic_store(&accepted, 0);
	atomic_store(&lstop, false);
	assert_int_equal(pthread_create(&lthread, NULL, listener_main, NULL), 0);
}

static void listener_stop(void)
{
	atomic_store(&lstop, true);
	pthread_join(lthread, NULL);
	close(lfd4);
	if (lfd6 >= 0)
		close(lfd6);
}

/* ---- the allowed HTTP server ----------------------------------------------------------- */

static struct MHD_Daemon *daemon_;
static int mport;
static atomic_int served;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)method;
	(void)version;
	(void)upload;
	(void)upload_size;
	if (!*con_cls) {
		*con_cls = (void *)1;
		return MHD_YES;
	}
	atomic_fetch_add(&served, 1);
	const char *body = "{\"ok\":true}";
	unsigned status = 200;
	char location[256] = "";
	/* /to/HOSTPORT: a redirect to http://HOSTPORT/ ("L" is the listener). */
	if (strncmp(url, "/to/", 4) == 0) {
		status = 302;
		body = "{}";
		const char *to = url + 4;
		if (strncmp(to, "L:", 2) == 0)
			snprintf(location, sizeof location, "http://%.*s:%d/", (int)strcspn(to + 2, "/"), to + 2, lport);
		else
			snprintf(location, sizeof location, "http://%s/", to);
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (location[0])
		MHD_add_response_header(resp, "Location", location);
	enum MHD_Result rc = MHD_queue_response(con, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static int group_setup(void **state)
{
	(void)state;
	sl_log_set_level(SL_LOG_OFF);
	listener_start();
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
				   on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	if (!daemon_)
		return -1;
	mport = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	listener_stop();
	return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* tmpl with {L} replaced by the listener's port and {M} by the server's. */
static void expand(char *out, size_t cap, const char *tmpl)
{
	struct sl_buf b;
	sl_buf_init(&b, 4096);
	for (const char *p = tmpl; *p; p++) {
		if (strncmp(p, "{L}", 3) == 0) {
			sl_buf_printf(&b, "%d", lport);
			p += 2;
		} else if (strncmp(p, "{M}", 3) == 0) {
			sl_buf_printf(&b, "%d", mport);
			p += 2;
		} else {
			sl_buf_addc(&b, *p);
		}
	}
	snprintf(out, cap, "%s", sl_buf_str(&b));
	sl_buf_free(&b);
}

#define CAP_MAX 16
static int ncap;
static char cap_ptr[CAP_MAX][128], cap_msg[CAP_MAX][SL_ERR_MSG_MAX];

static void cap_report(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	(void)ctx;
	if (ncap < CAP_MAX) {
		snprintf(cap_ptr[ncap], sizeof cap_ptr[0], "%s", pointer);
		snprintf(cap_msg[ncap], sizeof cap_msg[0], "%s", msg);
	}
	ncap++;
}

static struct sl_connector *load_conn(const char *url_tmpl, const char *extra, struct sl_conf_ctx *ctx)
{
	char url[512], doc[2048];
	expand(url, sizeof url, url_tmpl);
	snprintf(doc, sizeof doc,
		 "{\"connector\": \"t\", \"type\": \"http\", \"base_url\": \"%s\", \"connect_timeout\": \"2s\","
		 " \"timeout\": \"3s\"%s%s, \"actions\": {\"get\": {\"effect\": \"read\"},"
		 " \"post\": {\"effect\": \"write\", \"method\": \"POST\", \"path\": \"/latest/meta-data/{p}\"}}}",
		 url, extra ? ", " : "", extra ? extra : "");
	json_error_t je;
	json_t *j = json_loads(doc, 0, &je);
	if (!j)
		fprintf(stderr, "bad test JSON: %s: %s\n", je.text, doc);
	assert_non_null(j);
	ncap = 0;
	struct sl_connector *c = sl_connector_new(j, ctx);
	json_decref(j);
	return c;
}

static struct sl_connector *conn(const char *url_tmpl, const char *extra)
{
	struct sl_conf_ctx ctx = {.file = "connectors/t.yaml", .project_dir = "/tmp", .report_fn = cap_report};
	struct sl_connector *c = load_conn(url_tmpl, extra, &ctx);
	for (int i = 0; !c && i < ncap && i < CAP_MAX; i++)
		fprintf(stderr, "  conf: %s: %s\n", cap_ptr[i], cap_msg[i]);
	assert_non_null(c);
	return c;
}

static int do_call(struct sl_connector *c, const char *action, struct sl_err *err, int *status)
{
	json_t *in = json_pack("{s:s}", "p", "iam");
	struct sl_call cl = {.input = in, .idempotency_key = "k-1"};
	struct sl_call_result res;
	int rc = sl_connector_call(c, sl_connector_action(c, action), &cl, &res, err);
	json_decref(in);
	json_decref(res.output);
	if (status)
		*status = res.status;
	return rc;
}

struct refused_case {
	const char *url;   /* {L}: the listener's port, {M}: the server's */
	const char *extra; /* more connector keys, or NULL */
	const char *why;   /* expected in the message: the class, the address */
};

/* ---- the cases ------------------------------------------------------------------------------- */

#define LOOP "is a loopback address"
#define PRIV "is a private address"
#define CGN "carrier-grade NAT"
#define ULA "unique-local"
#define LL "is a link-local address"
#define META "is a cloud metadata endpoint"
#define UNSPEC "is an unspecified address"
#define MCAST "multicast or broadcast"
#define RSVD "is a reserved address"

static const struct refused_case refused[] = {
	/* loopback, spelled every way curl understands */
	{"http://127.0.0.1:{L}", NULL, "destination 127.0.0.1 " LOOP},
	{"http://127.1:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://127.0.1:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://2130706433:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://0x7f000001:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://0X7F000001:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://0x7f.0x0.0x0.0x1:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://0x7f.1:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://0177.0.0.1:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://0177.0000.0000.0001:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://017700000001:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://127.000.000.001:{L}", NULL, "127.0.0.1 " LOOP},
	{"http://127.255.255.254:{L}", NULL, "127.255.255.254 " LOOP},
	{"http://localhost:{L}", NULL, "(from localhost) " LOOP},
	{"http://LOCALHOST:{L}", NULL, "(from localhost) " LOOP},
	{"http://[::1]:{L}", NULL, "destination ::1 " LOOP},
	{"http://[0:0:0:0:0:0:0:1]:{L}", NULL, "::1 " LOOP},
	{"http://[::ffff:127.0.0.1]:{L}", NULL, "::ffff:127.0.0.1 " LOOP},
	{"http://[::ffff:7f00:1]:{L}", NULL, "::ffff:127.0.0.1 " LOOP},
	{"http://[0:0:0:0:0:ffff:7f00:0001]:{L}", NULL, "::ffff:127.0.0.1 " LOOP},
	{"http://[::127.0.0.1]:{L}", NULL, LOOP},            /* IPv4-compatible */
	{"http://[64:ff9b::127.0.0.1]:{L}", NULL, LOOP},     /* NAT64 */
	{"http://[64:ff9b::7f00:1]:{L}", NULL, LOOP},
	{"http://[64:ff9b:1::7f00:1]:{L}", NULL, LOOP},      /* local-use NAT64 */
	{"http://[2002:7f00:1::1]:{L}", NULL, LOOP},         /* 6to4 */
	/* "this host" */
	{"http://0.0.0.0:{L}", NULL, "destination 0.0.0.0 " UNSPEC},
	{"http://0:{L}", NULL, "0.0.0.0 " UNSPEC},
	{"http://0x0:{L}", NULL, "0.0.0.0 " UNSPEC},
	{"http://0.1.2.3:{L}", NULL, UNSPEC},
	{"http://[::]:{L}", NULL, "destination :: " UNSPEC},
	{"http://[::ffff:0.0.0.0]:{L}", NULL, UNSPEC},
	/* private ranges: these would hang until the connect timeout, so the
	 * refusal must come first and fast */
	{"http://10.0.0.1", NULL, "10.0.0.1 " PRIV},
	{"http://10.255.255.254:8080", NULL, PRIV},
	{"http://012.0.0.1", NULL, "10.0.0.1 " PRIV},
	{"http://167772161", NULL, "10.0.0.1 " PRIV},
	{"http://0xa000001", NULL, "10.0.0.1 " PRIV},
	{"http://172.16.0.1", NULL, "172.16.0.1 " PRIV},
	{"http://172.31.255.254", NULL, PRIV},
	{"http://192.168.0.1", NULL, "192.168.0.1 " PRIV},
	{"http://192.168.1.1:8443", NULL, PRIV},
	{"http://0xc0a80101", NULL, "192.168.1.1 " PRIV},
	{"http://3232235777", NULL, "192.168.1.1 " PRIV},
	{"http://100.64.0.1", NULL, "100.64.0.1 " "is a private (" CGN},
	{"http://100.127.255.254", NULL, CGN},
	{"http://[fc00::1]", NULL, ULA},
	{"http://[fd12:3456:789a::1]", NULL, ULA},
	{"http://[::ffff:10.0.0.1]", NULL, "::ffff:10.0.0.1 " PRIV},
	{"http://[::ffff:c0a8:101]", NULL, "::ffff:192.168.1.1 " PRIV},
	{"http://[64:ff9b::10.1.2.3]", NULL, PRIV},
	{"http://[fec0::1]", NULL, PRIV},                    /* site-local */
	/* link-local and metadata */
	{"http://169.254.169.254", NULL, "169.254.169.254 " META},
	{"http://169.254.169.254/latest/meta-data/", NULL, META},
	{"http://169.254.170.2", NULL, META},
	{"http://169.254.0.1", NULL, "169.254.0.1 " LL},
	{"http://0xa9fea9fe", NULL, "169.254.169.254 " META},
	{"http://2852039166", NULL, "169.254.169.254 " META},
	{"http://0251.0376.0251.0376", NULL, "169.254.169.254 " META},
	{"http://169.254.43518", NULL, "169.254.169.254 " META},
	{"http://[fe80::1]", NULL, "fe80::1 " LL},
	{"http://[fd00:ec2::254]", NULL, "fd00:ec2::254 " META},
	{"http://100.100.100.200", NULL, "100.100.100.200 " META},
	{"http://[::ffff:169.254.169.254]", NULL, META},
	{"http://[::ffff:a9fe:a9fe]", NULL, META},
	{"http://[64:ff9b::a9fe:a9fe]", NULL, META},
	{"http://metadata.google.internal", NULL, "destination metadata.google.internal " META},
	{"http://METADATA.Google.Internal.", NULL, META},
	{"http://metadata.goog", NULL, META},
	{"http://metadata", NULL, META},
	/* multicast, broadcast, reserved */
	{"http://224.0.0.1", NULL, MCAST},
	{"http://255.255.255.255", NULL, MCAST},
	{"http://240.0.0.1", NULL, RSVD},
	{"http://[ff02::1]", NULL, MCAST},
	/* an allow list that does not cover the destination */
	{"http://127.0.0.1:{L}", "\"allow_hosts\": [\"10.0.0.0/8\", \"127.0.0.2\", \"::1\"]", LOOP},
	{"http://127.0.0.1:{L}", "\"allow_hosts\": [\"localhost\"]", LOOP}, /* names match the URL's host only */
	{"http://localhost:{L}", "\"allow_hosts\": [\"127.0.0.2/32\", \"*.localhost\"]", LOOP},
	{"http://[::1]:{L}", "\"allow_hosts\": [\"127.0.0.1\"]", "::1 " LOOP},
	{"http://[::ffff:127.0.0.1]:{L}", "\"allow_hosts\": [\"::1\"]", LOOP},
	{"http://metadata.google.internal", "\"allow_hosts\": [\"*.internal\", \"*.google.internal\"]", META},
	{"http://169.254.169.254", "\"allow_hosts\": [\"169.254.169.254.nip.io\", \"10.0.0.0/8\"]", META},
	/* allow_link_local covers link-local and metadata, nothing else */
	{"http://127.0.0.1:{L}", "\"allow_link_local\": true", LOOP},
	{"http://10.0.0.1", "\"allow_link_local\": true", PRIV},
	{"http://[fc00::1]", "\"allow_link_local\": true", ULA},
};

static void test_refused_before_connecting(void **state)
{
	(void)state;
	int before_l = atomic_load(&accepted), before_m = atomic_load(&served);
	size_t n = SL_ARRAY_LEN(refused);
	assert_true(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const struct refused_case *rc = &refused[i];
		struct sl_connector *c = conn(rc->url, rc->extra);
		const char *action = i % 2 ? "post" : "get";
		struct sl_err err;
		int64_t t0 = sl_mono_ms();
		int r = do_call(c, action, &err, NULL);
		int64_t took = sl_mono_ms() - t0;
		bool ok = r != 0 && err.cls == SL_CLASS_PERMANENT && strstr(err.msg, rc->why) &&
			  strstr(err.msg, ": add it to allow_hosts to allow it") && took < 1500;
		if (!ok)
			fprintf(stderr, "case %zu %s (%s): rc %d class %s after %lld ms: %s\n", i, rc->url,
				rc->extra ? rc->extra : "-", r, sl_class_name(err.cls), (long long)took, err.msg);
		assert_true(ok);
		sl_connector_free(c);
	}
	assert_int_equal(atomic_load(&accepted), before_l); /* the internal service saw nobody */
	assert_int_equal(atomic_load(&served), before_m);
}

/* The control: allowed, the same spellings do reach the listener, so the
 * zero count above means refused, not unreachable. */
static void test_listener_control(void **state)
{
	(void)state;
	static const struct {
		const char *url, *extra;
	} reach[] = {
		{"http://127.0.0.1:{L}", "\"allow_hosts\": [\"127.0.0.1\"]"},
		{"http://0x7f000001:{L}", "\"allow_hosts\": [\"127.0.0.0/8\"]"},
		{"http://[::ffff:7f00:1]:{L}", "\"allow_hosts\": [\"127.0.0.1\"]"},
		{"http://0.0.0.0:{L}", "\"allow_hosts\": [\"0.0.0.0\"]"},
		{"http://localhost:{L}", "\"allow_hosts\": [\"localhost\"]"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(reach); i++) {
		int before = atomic_load(&accepted);
		struct sl_connector *c = conn(reach[i].url, reach[i].extra);
		struct sl_err err;
		assert_int_not_equal(do_call(c, "get", &err, NULL), 0); /* the listener hangs up */
		assert_null(strstr(err.msg, "allow_hosts"));
		for (int k = 0; k < 100 && atomic_load(&accepted) == before; k++)
			usleep(10000); /* the listener thread counts after accept */
		if (atomic_load(&accepted) <= before)
			fail_msg("%s: the listener saw no connection (%s)", reach[i].url, err.msg);
		sl_connector_free(c);
	}
}

/* The message names the address, the host it came from, why, and the fix. */
static void test_refusal_message(void **state)
{
	(void)state;
	struct sl_connector *c = conn("http://localhost:{L}/api", NULL);
	struct sl_err err;
	assert_int_not_equal(do_call(c, "get", &err, NULL), 0);
	char want4[256], want6[256];
	snprintf(want4, sizeof want4, "GET http://localhost:%d/api: destination 127.0.0.1 (from localhost) is a "
		 "loopback address: add it to allow_hosts to allow it", lport);
	snprintf(want6, sizeof want6, "GET http://localhost:%d/api: destination ::1 (from localhost) is a "
		 "loopback address: add it to allow_hosts to allow it", lport);
	if (strcmp(err.msg, want4) != 0 && strcmp(err.msg, want6) != 0)
		fail_msg("got: %s", err.msg);
	assert_int_equal(err.cls, SL_CLASS_PERMANENT);
	struct sl_health h;
	sl_connector_health(c, &h);
	assert_true(h.healthy); /* a refused destination is not a sick connector */
	sl_connector_free(c);
}

/* Names are checked after resolution: "localhost" is refused for what it
 * resolves to, and so would any name a resolver pointed at 127.0.0.1
 * between a check and a connect (DNS rebinding): the check IS at connect. */
static void test_names_checked_after_resolution(void **state)
{
	(void)state;
	int before = atomic_load(&accepted);
	struct sl_connector *c = conn("http://localhost:{L}", "\"allow_hosts\": [\"example.com\", \"*.example.com\"]");
	for (int i = 0; i < 3; i++) { /* the second and third call meet curl's DNS cache */
		struct sl_err err;
		assert_int_not_equal(do_call(c, "get", &err, NULL), 0);
		assert_non_null(strstr(err.msg, "(from localhost) is a loopback address"));
	}
	sl_connector_free(c);
	assert_int_equal(atomic_load(&accepted), before);
}

/* Redirects are never followed: a 3xx from an allowed server toward a
 * forbidden address is an error, and nothing connects there. */
static void test_redirects_not_followed(void **state)
{
	(void)state;
	static const char *const to[] = {"L:127.0.0.1", "L:localhost", "L:[::1]", "L:0x7f000001", "169.254.169.254",
					 "metadata.google.internal", "10.0.0.1", "[::ffff:127.0.0.1]"};
	int before = atomic_load(&accepted);
	for (size_t i = 0; i < SL_ARRAY_LEN(to); i++) {
		char url[256];
		snprintf(url, sizeof url, "http://127.0.0.1:{M}/to/%s", to[i]);
		struct sl_connector *c = conn(url, "\"allow_hosts\": [\"127.0.0.1\"]");
		struct sl_err err;
		int status = 0;
		assert_int_not_equal(do_call(c, "get", &err, &status), 0);
		assert_int_equal(err.http_status, 302);
		assert_int_equal(err.cls, SL_CLASS_PERMANENT);
		assert_non_null(strstr(err.msg, "HTTP 302"));
		sl_connector_free(c);
	}
	assert_int_equal(atomic_load(&accepted), before);
}

/* allow_hosts by IP, by CIDR (v4 and v6), by name: these do connect. */
static void test_allowed(void **state)
{
	(void)state;
	static const struct {
		const char *url, *extra;
	} ok[] = {
		{"http://127.0.0.1:{M}", "\"allow_hosts\": [\"127.0.0.1\"]"},
		{"http://127.0.0.1:{M}", "\"allow_hosts\": [\"10.0.0.0/8\", \"127.0.0.0/8\"]"},
		{"http://127.0.0.1:{M}", "\"allow_hosts\": [\"0.0.0.0/0\"]"},
		{"http://127.1:{M}", "\"allow_hosts\": [\"127.0.0.1\"]"},
		{"http://2130706433:{M}", "\"allow_hosts\": [\"127.0.0.1/32\"]"},
		{"http://localhost:{M}", "\"allow_hosts\": [\"localhost\"]"},
		{"http://localhost:{M}", "\"allow_hosts\": [\"LocalHost.\"]"},
		{"http://localhost:{M}", "\"allow_hosts\": [\"127.0.0.1\", \"::1\"]"},
		{"http://[::ffff:127.0.0.1]:{M}", "\"allow_hosts\": [\"127.0.0.1\"]"}, /* v4 entry, mapped form */
		{"http://[::ffff:7f00:1]:{M}", "\"allow_hosts\": [\"::ffff:127.0.0.0/104\"]"}, /* v6 CIDR */
		{"http://127.0.0.1:{M}", "\"allow_hosts\": [\"[::ffff:7f00:1]\"]"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
		int before = atomic_load(&served);
		struct sl_connector *c = conn(ok[i].url, ok[i].extra);
		struct sl_err err;
		int status = 0;
		int rc = do_call(c, "get", &err, &status);
		if (rc != 0)
			fprintf(stderr, "case %zu %s (%s): %s\n", i, ok[i].url, ok[i].extra, err.msg);
		assert_int_equal(rc, 0);
		assert_int_equal(status, 200);
		assert_int_equal(atomic_load(&served), before + 1);
		sl_connector_free(c);
	}
}

/* ---- the classifier and the list, directly --------------------------------------------------- */

static enum sl_addr_class cls_of(const char *text)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, text, a) == 1)
		return sl_addr_classify(AF_INET, a);
	assert_int_equal(inet_pton(AF_INET6, text, a), 1);
	return sl_addr_classify(AF_INET6, a);
}

static void test_classify(void **state)
{
	(void)state;
	static const struct {
		const char *addr;
		enum sl_addr_class c;
	} t[] = {
		{"8.8.8.8", SL_ADDR_PUBLIC}, {"1.1.1.1", SL_ADDR_PUBLIC}, {"172.15.255.255", SL_ADDR_PUBLIC},
		{"172.32.0.0", SL_ADDR_PUBLIC}, {"100.63.255.255", SL_ADDR_PUBLIC}, {"100.128.0.0", SL_ADDR_PUBLIC},
		{"169.253.255.255", SL_ADDR_PUBLIC}, {"192.169.0.1", SL_ADDR_PUBLIC}, {"223.255.255.255", SL_ADDR_PUBLIC},
		{"127.0.0.1", SL_ADDR_LOOPBACK}, {"127.255.255.255", SL_ADDR_LOOPBACK},
		{"10.0.0.0", SL_ADDR_PRIVATE}, {"172.16.0.0", SL_ADDR_PRIVATE}, {"172.31.255.255", SL_ADDR_PRIVATE},
		{"192.168.255.255", SL_ADDR_PRIVATE}, {"100.64.0.0", SL_ADDR_SHARED}, {"100.127.255.255", SL_ADDR_SHARED},
		{"169.254.0.0", SL_ADDR_LINK_LOCAL}, {"169.254.169.254", SL_ADDR_METADATA},
		{"100.100.100.200", SL_ADDR_METADATA}, {"0.0.0.0", SL_ADDR_UNSPECIFIED}, {"0.255.0.1", SL_ADDR_UNSPECIFIED},
		{"224.0.0.251", SL_ADDR_MULTICAST}, {"255.255.255.255", SL_ADDR_MULTICAST}, {"240.0.0.1", SL_ADDR_RESERVED},
		{"192.0.0.8", SL_ADDR_RESERVED},
		{"2606:4700::1111", SL_ADDR_PUBLIC}, {"2001:db8::1", SL_ADDR_PUBLIC}, {"64:ff9b::8.8.8.8", SL_ADDR_PUBLIC},
		{"::ffff:8.8.8.8", SL_ADDR_PUBLIC}, {"2002:808:808::1", SL_ADDR_PUBLIC},
		{"::", SL_ADDR_UNSPECIFIED}, {"::1", SL_ADDR_LOOPBACK}, {"::ffff:127.0.0.1", SL_ADDR_LOOPBACK},
		{"::127.0.0.1", SL_ADDR_LOOPBACK}, {"::8.8.8.8", SL_ADDR_RESERVED}, {"64:ff9b::a00:1", SL_ADDR_PRIVATE},
		{"2002:a9fe:a9fe::", SL_ADDR_METADATA}, {"fc00::", SL_ADDR_UNIQUE_LOCAL},
		{"fdff:ffff::1", SL_ADDR_UNIQUE_LOCAL}, {"fd00:ec2::254", SL_ADDR_METADATA},
		{"fe80::1", SL_ADDR_LINK_LOCAL}, {"febf::1", SL_ADDR_LINK_LOCAL}, {"fec0::1", SL_ADDR_PRIVATE},
		{"ff02::1", SL_ADDR_MULTICAST},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(t); i++) {
		if (cls_of(t[i].addr) != t[i].c)
			fail_msg("%s: got %s, want %s", t[i].addr, sl_addr_class_name(cls_of(t[i].addr)),
				 sl_addr_class_name(t[i].c));
	}
	/* What model providers refuse stays link-local and metadata only. */
	unsigned char a[16];
	inet_pton(AF_INET, "127.0.0.1", a);
	assert_false(sl_addr_forbidden(AF_INET, a));
	inet_pton(AF_INET, "169.254.1.1", a);
	assert_true(sl_addr_forbidden(AF_INET, a));
	inet_pton(AF_INET6, "::ffff:169.254.169.254", a);
	assert_true(sl_addr_forbidden(AF_INET6, a));
	assert_true(sl_host_is_metadata("Metadata.Google.Internal."));
	assert_false(sl_host_is_metadata("metadata.example.com"));
	assert_string_equal(sl_addr_class_name(SL_ADDR_LOOPBACK), "a loopback address");
}

static struct sl_allow_list parse_list(const char *json)
{
	json_t *arr = json_loads(json, 0, NULL);
	assert_non_null(arr);
	struct sl_conf_ctx ctx = {.file = "t", .report_fn = cap_report};
	ncap = 0;
	struct sl_allow_list l;
	assert_int_equal(sl_allow_list_parse(&ctx, arr, "/allow_hosts", &l), 0);
	json_decref(arr);
	return l;
}

static bool has_addr(const struct sl_allow_list *l, const char *text)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, text, a) == 1)
		return sl_allow_list_has_addr(l, AF_INET, a);
	assert_int_equal(inet_pton(AF_INET6, text, a), 1);
	return sl_allow_list_has_addr(l, AF_INET6, a);
}

static void test_allow_list_matching(void **state)
{
	(void)state;
	struct sl_allow_list l = parse_list("[\"helpdesk.internal\", \"*.corp.example\", \"10.0.0.0/8\","
					    " \"192.168.1.7\", \"fd00::/8\", \"[::1]\", \"172.16.0.0/12\"]");
	assert_int_equal(l.n, 7);
	assert_true(sl_allow_list_has_name(&l, "helpdesk.internal", false));
	assert_true(sl_allow_list_has_name(&l, "HelpDesk.Internal.", false));
	assert_false(sl_allow_list_has_name(&l, "x.helpdesk.internal", false));
	assert_false(sl_allow_list_has_name(&l, "helpdesk.internal.evil.com", false));
	assert_true(sl_allow_list_has_name(&l, "a.corp.example", false));
	assert_true(sl_allow_list_has_name(&l, "a.b.CORP.example", false));
	assert_false(sl_allow_list_has_name(&l, "a.corp.example", true)); /* exact only */
	assert_false(sl_allow_list_has_name(&l, "corp.example", false)); /* subdomains only */
	assert_false(sl_allow_list_has_name(&l, "evilcorp.example", false));
	assert_false(sl_allow_list_has_name(&l, NULL, false));
	assert_true(has_addr(&l, "10.1.2.3"));
	assert_true(has_addr(&l, "::ffff:10.1.2.3"));
	assert_false(has_addr(&l, "11.0.0.1"));
	assert_true(has_addr(&l, "192.168.1.7"));
	assert_false(has_addr(&l, "192.168.1.8"));
	assert_true(has_addr(&l, "172.31.0.1"));
	assert_false(has_addr(&l, "172.32.0.1"));
	assert_true(has_addr(&l, "fd12::1"));
	assert_false(has_addr(&l, "fc00::1"));
	assert_true(has_addr(&l, "::1"));
	assert_false(has_addr(&l, "127.0.0.1"));

	/* The verdict: a name vouches for any address but a metadata one. */
	unsigned char a[16];
	inet_pton(AF_INET, "127.0.0.1", a);
	assert_int_equal(sl_outbound_check(&l, false, "helpdesk.internal", AF_INET, a), SL_ADDR_PUBLIC);
	assert_int_equal(sl_outbound_check(&l, false, "other.internal", AF_INET, a), SL_ADDR_LOOPBACK);
	assert_int_equal(sl_outbound_check(NULL, false, NULL, AF_INET, a), SL_ADDR_LOOPBACK);
	inet_pton(AF_INET, "169.254.169.254", a);
	assert_int_equal(sl_outbound_check(&l, false, "helpdesk.internal", AF_INET, a), SL_ADDR_METADATA);
	assert_int_equal(sl_outbound_check(&l, true, "x", AF_INET, a), SL_ADDR_PUBLIC);
	inet_pton(AF_INET, "8.8.8.8", a);
	assert_int_equal(sl_outbound_check(NULL, false, NULL, AF_INET, a), SL_ADDR_PUBLIC);
	assert_true(sl_outbound_name_refused(&l, false, "metadata.google.internal"));
	assert_false(sl_outbound_name_refused(&l, true, "metadata.google.internal"));
	assert_false(sl_outbound_name_refused(&l, false, "helpdesk.internal"));
	sl_allow_list_free(&l);

	l = parse_list("[\"metadata.google.internal\", \"0.0.0.0/0\", \"::/0\"]");
	assert_false(sl_outbound_name_refused(&l, false, "METADATA.google.internal"));
	assert_true(has_addr(&l, "1.2.3.4"));
	assert_true(has_addr(&l, "fe80::1"));
	sl_allow_list_free(&l);
	l = parse_list("[]");
	assert_int_equal(l.n, 0);
	sl_allow_list_free(&l);
}

/* Bad entries are config errors at /allow_hosts/INDEX (the loader turns the
 * pointer into FILE:LINE:COL; test_config covers that end). */
static void test_allow_hosts_config_errors(void **state)
{
	(void)state;
	static const struct {
		const char *value, *pointer, *msg;
	} bad[] = {
		{"\"127.0.0.1\"", "/allow_hosts", "\"allow_hosts\" must be a list, not a string"},
		{"{\"a\": 1}", "/allow_hosts", "\"allow_hosts\" must be a list, not a mapping"},
		{"[5]", "/allow_hosts/0", "an allow_hosts entry must be a string"},
		{"[\"127.0.0.1\", null]", "/allow_hosts/1", "an allow_hosts entry must be a string"},
		{"[[\"a\"]]", "/allow_hosts/0", "must be a string"},
		{"[\"\"]", "/allow_hosts/0", "an allow_hosts entry must be a host name"},
		{"[\"10.0.0.0/33\"]", "/allow_hosts/0", "the prefix length must be 0 to 32"},
		{"[\"fd00::/129\"]", "/allow_hosts/0", "the prefix length must be 0 to 128"},
		{"[\"10.0.0.0/\"]", "/allow_hosts/0", "the prefix length must be 0 to 32"},
		{"[\"10.0.0.0/8x\"]", "/allow_hosts/0", "the prefix length must be 0 to 32"},
		{"[\"10.0.0.0/-1\"]", "/allow_hosts/0", "the prefix length"},
		{"[\"10.0.0.1/8\"]", "/allow_hosts/0", "has bits set past its /8 prefix (did you mean \"10.0.0.0/8\"?)"},
		{"[\"fd00::1/8\"]", "/allow_hosts/0", "(did you mean \"fd00::/8\"?)"},
		{"[\"300.1.1.1/8\"]", "/allow_hosts/0", "is not a CIDR: \"300.1.1.1\" is not an IP address"},
		{"[\"helpdesk/8\"]", "/allow_hosts/0", "is not a CIDR"},
		{"[\"127.1\"]", "/allow_hosts/0", "\"127.1\" is the IPv4 address 127.0.0.1: write it as 127.0.0.1"},
		{"[\"0x7f000001\"]", "/allow_hosts/0", "write it as 127.0.0.1"},
		{"[\"2130706433\"]", "/allow_hosts/0", "write it as 127.0.0.1"},
		{"[\"1.2.3.999\"]", "/allow_hosts/0", "is not a host name"},
		{"[\"*\"]", "/allow_hosts/0", "a wildcard must be *.domain"},
		{"[\"*.\"]", "/allow_hosts/0", "a wildcard must be *.domain"},
		{"[\"**.example\"]", "/allow_hosts/0", "a wildcard must be *.domain"},
		{"[\"a.*.example\"]", "/allow_hosts/0", "is not a host name"},
		{"[\"http://helpdesk:80/x\"]", "/allow_hosts/0", "is a URL: write only its host (helpdesk)"},
		{"[\"helpdesk:8080\"]", "/allow_hosts/0", "is not a host name"},
		{"[\"bad host\"]", "/allow_hosts/0", "is not a host name"},
		{"[\"a..b\"]", "/allow_hosts/0", "is not a host name"},
		{"[\"ok.example\", \"[::1\"]", "/allow_hosts/1", "is not a host name"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		char extra[512];
		snprintf(extra, sizeof extra, "\"allow_hosts\": %s", bad[i].value);
		struct sl_conf_ctx ctx = {.file = "connectors/t.yaml", .project_dir = "/tmp", .report_fn = cap_report};
		struct sl_connector *c = load_conn("http://api.example.com", extra, &ctx);
		bool found = false;
		for (int k = 0; k < ncap && k < CAP_MAX; k++)
			if (strcmp(cap_ptr[k], bad[i].pointer) == 0 && strstr(cap_msg[k], bad[i].msg))
				found = true;
		if (c || !found) {
			fprintf(stderr, "allow_hosts %s: want \"%s\" at %s, got:\n", bad[i].value, bad[i].msg,
				bad[i].pointer);
			for (int k = 0; k < ncap && k < CAP_MAX; k++)
				fprintf(stderr, "  %s: %s\n", cap_ptr[k], cap_msg[k]);
		}
		assert_null(c);
		assert_true(found);
	}
	/* Many good forms at once. */
	struct sl_connector *c = conn("http://api.example.com",
				      "\"allow_hosts\": [\"127.0.0.1\", \"::1\", \"[fd00::1]\", \"10.0.0.0/8\", "
				      "\"fd00::/8\", \"0.0.0.0/0\", \"helpdesk.internal\", \"*.corp.example\", "
				      "\"localhost\", \"my_host-1.example.\", \"HOST.EXAMPLE\"]");
	sl_connector_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_before_connecting),
		cmocka_unit_test(test_listener_control),
		cmocka_unit_test(test_refusal_message),
		cmocka_unit_test(test_names_checked_after_resolution),
		cmocka_unit_test(test_redirects_not_followed),
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_allow_list_matching),
		cmocka_unit_test(test_allow_hosts_config_errors),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
