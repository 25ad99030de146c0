/*
 * server.c: libmicrohttpd plumbing: listening, limits, the per-request
 * state, the router, problem+json answers and the request log.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gov/auth.h"
#include "obs/obs.h"
#include "server/server_int.h"

/* ---- the route table: the router and the OpenAPI test read the same one ----
 * One line per route: method, path template, handler, and the role it needs
 * (docs/reference/api.md has the matrix). PUBLIC: the probes, the console
 * page and the OpenAPI document (nothing in them is a tenant's), and
 * webhooks, which carry their own HMAC signature. /metrics wants a key like
 * the rest: Prometheus sends one (bearer_token_file). The arrays below are
 * derived from it, so a route cannot be paired with another's handler. */
#define SRV_ROUTES(X) \
	X("GET",  "/",                               srv_console,           PUBLIC) \
	X("GET",  "/healthz",                        srv_healthz,           PUBLIC) \
	X("GET",  "/readyz",                         srv_readyz,            PUBLIC) \
	X("GET",  "/v1/openapi.json",                srv_openapi,           PUBLIC) \
	X("GET",  "/metrics",                        srv_metrics,           VIEWER) \
	X("GET",  "/v1/workflows",                   srv_workflows,         VIEWER) \
	X("POST", "/v1/workflows/{name}/runs",       srv_start_run,         OPERATOR) \
	X("GET",  "/v1/runs",                        srv_runs_list,         VIEWER) \
	X("GET",  "/v1/runs/{id}",                   srv_run_get,           VIEWER) \
	X("POST", "/v1/runs/{id}/cancel",            srv_run_cancel,        OPERATOR) \
	X("GET",  "/v1/dlq",                         srv_dlq_list,          VIEWER) \
	X("POST", "/v1/dlq/replay",                  srv_dlq_replay_bulk,   OPERATOR) \
	X("POST", "/v1/dlq/{id}/replay",             srv_dlq_replay,        OPERATOR) \
	X("GET",  "/v1/audit",                       srv_audit_list,        VIEWER) \
	X("POST", "/hooks/{path}",                   srv_webhook,           PUBLIC) \
	X("POST", "/v1/chat/completions",            srv_chat_completions,  OPERATOR) \
	X("GET",  "/v1/models",                      srv_models,            VIEWER) \
	X("GET",  "/v1/costs",                       srv_costs,             VIEWER) \
	X("GET",  "/v1/connectors",                  srv_connectors,        VIEWER) \
	X("GET",  "/v1/runs/{id}/trace",             srv_run_trace,         VIEWER) \
	X("GET",  "/v1/drift",                       srv_drift,             VIEWER) \
	X("GET",  "/v1/slo",                         srv_slo,               VIEWER) \
	X("GET",  "/v1/pauses",                      srv_pauses_list,       VIEWER) \
	X("POST", "/v1/pauses",                      srv_pause_create,      ADMIN) \
	X("DELETE", "/v1/pauses/{kind}/{name}",      srv_pause_delete,      ADMIN) \
	X("GET",  "/v1/keys",                        srv_keys_list,         ADMIN) \
	X("POST", "/v1/keys/{id}/revoke",            srv_key_revoke,        ADMIN) \
	X("GET",  "/v1/approvals",                   srv_approvals_list,    VIEWER) \
	X("GET",  "/v1/approvals/{id}",              srv_approval_get,      VIEWER) \
	X("POST", "/v1/approvals/{id}/decision",     srv_approval_decide,   OPERATOR) \
	X("POST", "/v1/events",                      srv_events,            OPERATOR)

#define SRV_ROLE_PUBLIC SRV_PUBLIC
#define SRV_ROLE_VIEWER SL_ROLE_VIEWER
#define SRV_ROLE_OPERATOR SL_ROLE_OPERATOR
#define SRV_ROLE_ADMIN SL_ROLE_ADMIN
#define ROUTE_PATH(m, p, fn, role) {m, p},
#define ROUTE_FN(m, p, fn, role) fn,
#define ROUTE_ROLE(m, p, fn, role) SRV_ROLE_##role,
static const struct sl_server_route routes[] = {SRV_ROUTES(ROUTE_PATH)};
static const srv_handler_fn handlers[] = {SRV_ROUTES(ROUTE_FN)};
static const int route_roles[] = {SRV_ROUTES(ROUTE_ROLE)};
#undef ROUTE_PATH
#undef ROUTE_FN
#undef ROUTE_ROLE

const struct sl_server_route *sl_server_routes(size_t *n)
{
	*n = SL_ARRAY_LEN(routes);
	return routes;
}

/* Matches url against a template; a {x} segment takes one non-empty
 * segment, except {path} which takes the rest. Up to 2 parameters. */
static bool route_match(const char *tpl, const char *url, char params[2][SRV_PARAM_MAX])
{
	int np = 0;
	while (*tpl && *url) {
		if (*tpl == '{') {
			const char *close = strchr(tpl, '}');
			bool rest = strncmp(tpl, "{path}", 6) == 0;
			size_t n = rest ? strlen(url) : strcspn(url, "/");
			if (n == 0 || n >= SRV_PARAM_MAX || np >= 2)
				return false;
			memcpy(params[np], url, n);
			params[np][n] = '\0';
			np++;
			url += n;
			tpl = close + 1;
			continue;
		}
		if (*tpl != *url)
			return false;
		tpl++;
		url++;
	}
	return *tpl == '\0' && *url == '\0';
}

/* ---- answers ---------------------------------------------------------------- */

void srv_reply_json(struct srv_req *r, int status, json_t *doc)
{
	r->status = status;
	free(r->resp_body);
	r->resp_body = json_dumps(doc, JSON_COMPACT | SL_JSON_REAL);
	r->resp_type = "application/json";
	json_decref(doc);
}

static const char *problem_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static const char *problem_slug(int status)
{
	switch (status) {
	case 400: return "bad-request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not-found";
	case 405: return "method-not-allowed";
	case 409: return "conflict";
	case 413: return "too-large";
	case 422: return "unprocessable";
	case 429: return "overloaded";
	case 503: return "unavailable";
	default: return "internal";
	}
}

void srv_problem_errs(struct srv_req *r, int status, const char *detail, json_t *errors)
{
	srv_problem_with(r, status, detail, "errors", errors);
}

void srv_problem_with(struct srv_req *r, int status, const char *detail, const char *member, json_t *value)
{
	json_t *p = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "", "title", problem_title(status), "status",
			      status, "detail", detail ? detail : "", "instance", r->url ? r->url : "");
	char *type = sl_asprintf("https://sluice.dev/problems/%s", problem_slug(status));
	json_object_set_new(p, "type", json_string(type));
	free(type);
	if (value)
		json_object_set_new(p, member, value);
	srv_reply_json(r, status, p);
	r->resp_type = "application/problem+json";
}

void srv_problem(struct srv_req *r, int status, const char *detail)
{
	srv_problem_errs(r, status, detail, NULL);
}

/* Maps an SL_E* code to an answer. */
void srv_problem_code(struct srv_req *r, int code, const struct sl_err *err)
{
	int status = 500;
	switch (code) {
	case SL_ENOTFOUND: status = 404; break;
	case SL_EINVAL: status = 400; break;
	case SL_EEXISTS: status = 409; break;
	case SL_ETOOBIG: status = 413; break;
	case SL_EBUSY: status = 503; break;
	default: status = 500; break;
	}
	if (err && err->cls == SL_CLASS_POLICY) /* a policy rule refused it: the caller may not */
		status = 403;
	srv_problem(r, status, err && err->msg[0] ? err->msg : sl_code_message(code));
}

const char *srv_header(struct srv_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *srv_query(struct srv_req *r, const char *name)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
	return v && *v ? v : NULL;
}

/* ---- request life ----------------------------------------------------------- */

static enum MHD_Result send_reply(struct MHD_Connection *c, struct srv_req *r)
{
	if (!r->resp_body) {
		srv_problem(r, 500, "no answer");
	}
	if (!r->resp_body) /* json_dumps failed: out of memory */
		return MHD_NO;
	size_t n = strlen(r->resp_body);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(n, r->resp_body, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	r->resp_body = NULL; /* the response frees it */
	MHD_add_response_header(resp, "Content-Type", r->resp_type ? r->resp_type : "application/json");
	if (r->retry_after) {
		char ra[16];
		snprintf(ra, sizeof ra, "%d", r->retry_after_s > 0 ? r->retry_after_s : 1);
		MHD_add_response_header(resp, "Retry-After", ra);
	}
	if (r->location[0])
		MHD_add_response_header(resp, "Location", r->location);
	if (r->status == 401 && r->www_auth)
		MHD_add_response_header(resp, "WWW-Authenticate", r->www_auth);
	if (r->status == 405 && r->allow[0])
		MHD_add_response_header(resp, "Allow", r->allow);
	if (r->corr[0])
		MHD_add_response_header(resp, "X-Correlation-Id", r->corr);
	enum MHD_Result rc = MHD_queue_response(c, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* X-Correlation-Id, else the trace id of a W3C traceparent, else new. */
static void pick_correlation(struct srv_req *r)
{
	const char *v = srv_header(r, "X-Correlation-Id");
	if (v && *v && strlen(v) < sizeof r->corr) {
		bool ok = true;
		for (const char *p = v; *p; p++)
			if (!isalnum((unsigned char)*p) && !strchr("-_.:", *p))
				ok = false;
		if (ok) {
			snprintf(r->corr, sizeof r->corr, "%s", v);
			return;
		}
	}
	v = srv_header(r, "traceparent");
	/* version "-" trace-id(32 hex) "-" parent-id "-" flags */
	if (v && strlen(v) >= 35 && v[2] == '-') {
		bool ok = true;
		for (int i = 3; i < 35; i++)
			if (!isxdigit((unsigned char)v[i]))
				ok = false;
		if (ok && v[35] == '-') {
			memcpy(r->corr, v + 3, 32);
			r->corr[32] = '\0';
			return;
		}
	}
	char id[SL_ID_MAX];
	sl_id_new("cor_", id);
	snprintf(r->corr, sizeof r->corr, "%s", id);
}

static void dispatch(struct sl_server *s, struct srv_req *r)
{
	bool path_known = false;
	for (size_t i = 0; i < SL_ARRAY_LEN(routes); i++) {
		char params[2][SRV_PARAM_MAX] = {{0}};
		if (!route_match(routes[i].path, r->url, params))
			continue;
		path_known = true;
		size_t al = strlen(r->allow);
		snprintf(r->allow + al, sizeof r->allow - al, "%s%s", al ? ", " : "", routes[i].method);
		/* HEAD is GET without the body (libmicrohttpd drops it) */
		bool head = strcmp(r->method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0;
		if (!head && strcmp(routes[i].method, r->method) != 0)
			continue;
		memcpy(r->params, params, sizeof params);
		r->route = routes[i].path;
		if (srv_authorize(s, r, route_roles[i]))
			handlers[i](s, r);
		return;
	}
	if (path_known)
		srv_problem(r, 405, "method not allowed on this path");
	else
		srv_problem(r, 404, "no such endpoint");
}

static bool is_probe(const char *url)
{
	return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct sl_server *s = cls;
	struct srv_req *r = *con_cls;
	if (!r) {
		r = sl_xcalloc(1, sizeof *r);
		*con_cls = r;
		r->t0 = sl_mono_us();
		r->conn = c;
		r->url = sl_strdup(url);
		snprintf(r->method, sizeof r->method, "%s", method);
		sl_buf_init(&r->body, s->max_body);
		pick_correlation(r);
		int now = atomic_fetch_add(&s->inflight, 1) + 1;
		r->counted = true;
		/* Past the bound: 429 with Retry-After, before reading the body, so
		 * memory stays bounded. Health probes are exempt: a load balancer
		 * must not take a busy server for a dead one. */
		if (now > s->max_inflight && !is_probe(url)) {
			r->retry_after = true;
			srv_problem(r, 429, "too many requests in progress; retry after the Retry-After seconds");
			return send_reply(c, r);
		}
		const char *cl = srv_header(r, "Content-Length");
		int64_t len;
		if (cl && sl_parse_i64(cl, &len) == 0 && (len < 0 || (uint64_t)len > s->max_body)) {
			srv_problem(r, 413, "request body is larger than the limit");
			return send_reply(c, r);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_big && sl_buf_add(&r->body, upload, *upload_size) != 0)
			r->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	r->answered = true;
	if (r->too_big)
		srv_problem(r, 413, "request body is larger than the limit");
	else
		dispatch(s, r);
	return send_reply(c, r);
}

/* Route templates, not paths, label the series: their number is bounded. */
static void count_request(const struct srv_req *r)
{
	char code[8];
	snprintf(code, sizeof code, "%d", r->status);
	const char *route = r->route ? r->route : "other";
	const char *method = strcmp(r->method, "GET") == 0 || strcmp(r->method, "POST") == 0 ||
					     strcmp(r->method, "HEAD") == 0
				     ? r->method
				     : "other";
	const char *l[] = {method, route, code};
	sl_metric_add(SL_M_HTTP_REQUESTS, l, 1);
	const char *d[] = {route};
	sl_metric_observe(SL_M_HTTP_DURATION, d, (double)(sl_mono_us() - r->t0) / 1e6);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode tc)
{
	(void)c;
	(void)tc;
	struct sl_server *s = cls;
	struct srv_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	if (r->counted)
		atomic_fetch_sub(&s->inflight, 1);
	count_request(r);
	if (sl_log_enabled(SL_LOG_INFO)) {
		char status[16], dur[32];
		snprintf(status, sizeof status, "%d", r->status);
		snprintf(dur, sizeof dur, "%.3f", (double)(sl_mono_us() - r->t0) / 1000.0);
		sl_log_emit(SL_LOG_INFO, "server", "request", "method", r->method, "path", r->url, "status", status,
			    "duration_ms", dur, "run_id", r->run_id, "correlation_id", r->corr, NULL);
	}
	sl_buf_free(&r->body);
	free(r->resp_body);
	free(r->url);
	free(r);
}

/* ---- start and stop ----------------------------------------------------------- */

/* "HOST:PORT" with an IPv4 address or localhost, or "[IPv6]:PORT". */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, struct sl_err *err)
{
	const char *colon = strrchr(listen, ':');
	if (!colon || colon == listen)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "listen '%s' wants HOST:PORT or [IPv6]:PORT", listen);
	char host[64];
	const char *h = listen;
	size_t hl = (size_t)(colon - listen);
	bool v6 = listen[0] == '[';
	if (v6) {
		if (hl < 3 || colon[-1] != ']')
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "listen '%s': want [IPv6]:PORT", listen);
		h++;
		hl -= 2;
	}
	if (hl >= sizeof host)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "listen '%s': host too long", listen);
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	int64_t port;
	if (sl_parse_i64(colon + 1, &port) || port < 0 || port > 65535)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "listen '%s': bad port", listen);
	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)ss;
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
			return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "listen '%s': not an IPv6 address", listen);
		return 0;
	}
	struct sockaddr_in *sa = (struct sockaddr_in *)ss;
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE,
				  "listen '%s': want an IPv4 address, localhost or [IPv6]", listen);
	return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	sl_log(SL_LOG_INFO, "server", "httpd", "detail", msg, NULL);
}

int sl_server_start(struct sl_engine *e, const struct sl_server_opts *o, struct sl_server **out,
		    struct sl_err *err)
{
	static const struct sl_server_opts defaults = {0};
	if (!o)
		o = &defaults;
	*out = NULL;
	struct sockaddr_storage sa;
	int rc = parse_listen(o->listen ? o->listen : "127.0.0.1:8080", &sa, err);
	if (rc)
		return rc;
	struct sl_server *s = sl_xcalloc(1, sizeof *s);
	s->e = e;
	s->max_body = o->max_body ? o->max_body : 1024 * 1024;
	s->max_inflight = o->max_inflight > 0 ? o->max_inflight : 256;
	int timeout = o->conn_timeout_s > 0 ? o->conn_timeout_s : 30;
	int threads = o->threads > 0 ? o->threads : 16;
	atomic_init(&s->inflight, 0);
	pthread_mutex_init(&s->drift_mu, NULL);
	rc = srv_hooks_init(s, err);
	if (rc) {
		srv_hooks_free(s);
		free(s);
		return rc;
	}
	/* the connection limit leaves room above max_inflight, so the excess
	 * gets a 429 instead of a refused connection */
	unsigned conn_limit = (unsigned)s->max_inflight * 2 + 16;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* before the first request: handlers report signals (its mutex) */
	srv_signals_start(s);
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
				(unsigned)threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout,
				MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
				s, MHD_OPTION_END);
	if (!s->d) {
		srv_signals_stop(s);
		srv_hooks_free(s);
		free(s);
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "cannot listen on %s (in use, or not an address here)",
				  o->listen ? o->listen : "127.0.0.1:8080");
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : 0;
	sl_metrics_collector_add(srv_collect_metrics, s);
	*out = s;
	return 0;
}

int sl_server_port(const struct sl_server *s)
{
	return s->port;
}

void sl_server_stop(struct sl_server *s)
{
	if (!s)
		return;
	sl_metrics_collector_remove(srv_collect_metrics, s);
	MHD_stop_daemon(s->d);
	srv_signals_stop(s); /* after the last request: they report signals */
	srv_hooks_free(s);
	json_decref(s->drift_state);
	json_decref(s->slo_state);
	pthread_mutex_destroy(&s->drift_mu);
	free(s);
}
