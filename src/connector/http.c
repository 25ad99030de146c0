/*
 * http.c: the `http` connector type: declarative REST calls with libcurl.
 *
 * A connector holds a base URL, credentials (resolved once at init), static
 * headers and a pool of curl easy handles. An action is a method, a path
 * template and three optional jq programs (query, body, output), compiled
 * once at load.
 *
 * Connection reuse: each pooled easy handle keeps its own connection cache
 * (curl_easy_reset keeps live connections), so a busy connector reuses its
 * TCP/TLS connections without sharing one cache between threads. Only the
 * DNS and TLS-session caches are shared (CURLSH with locks): libcurl
 * documents a shared *connection* cache as unsafe across concurrent threads.
 *
 * Outbound safety (SSRF): every address curl is about to connect to goes
 * through the open-socket callback, which refuses loopback, private,
 * link-local, metadata, unspecified, multicast and reserved addresses
 * (outbound.c) unless the connector's allow_hosts names the URL's host or
 * the address (allow_link_local: true still admits link-local and
 * metadata). Checking the socket's address rather than the URL's text
 * covers every spelling of an address, every DNS answer (no window
 * between check and connect for a rebinding resolver) and a proxy (its
 * address is the one connected to). Metadata host names are refused before
 * they are even resolved. Redirects are not followed.
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_DEFAULT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 3000
#define HTTP_POOL_MAX 32           /* idle easy handles kept per connector */
#define HTTP_HEADER_LINES_MAX 64   /* static header lines of one action */
#define HTTP_SECRETS_MAX 16        /* resolved secrets of one connector */
#define HTTP_RESP_HEADERS_MAX (64 * 1024)
#define HTTP_URL_MAX (16 * 1024)
#define HTTP_SNIPPET_MAX 200       /* response body bytes quoted in an error */
#define HTTP_USER_AGENT "sluice/0.1"

/* ---- process-wide curl set-up --------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

/* ---- header lists ---------------------------------------------------------------- */

/* "Name: value" lines where a later line replaces an earlier one of the same
 * name, so defaults < connector headers < action headers < auth. */
struct hdrs {
	char *v[HTTP_HEADER_LINES_MAX];
	size_t n;
};

static bool hdr_name_is(const char *line, const char *name)
{
	size_t n = strlen(name);
	return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static int hdrs_set(struct hdrs *h, const char *name, const char *value)
{
	char *line = sl_asprintf("%s: %s", name, value);
	for (size_t i = 0; i < h->n; i++) {
		if (hdr_name_is(h->v[i], name)) {
			sl_secret_free(h->v[i]);
			h->v[i] = line;
			return 0;
		}
	}
	if (h->n == HTTP_HEADER_LINES_MAX) {
		sl_secret_free(line);
		return -1;
	}
	h->v[h->n++] = line;
	return 0;
}

static bool hdrs_has(const struct hdrs *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (hdr_name_is(h->v[i], name))
			return true;
	return false;
}

/* Header lines may carry resolved secrets: wipe them all, it costs nothing. */
static void hdrs_free(struct hdrs *h)
{
	for (size_t i = 0; i < h->n; i++)
		sl_secret_free(h->v[i]);
	h->n = 0;
}

static bool token_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!token_char(*s))
			return false;
	return true;
}

/* No control characters: a CR or LF in a value would inject headers. */
static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* ---- the connector --------------------------------------------------------------- */

struct http_conn {
	char *base_url; /* scheme://host[:port][/prefix], no trailing slash */
	int64_t timeout_ms, connect_timeout_ms;
	bool allow_link_local;
	struct sl_allow_list allow; /* allow_hosts */
	char *host;     /* base_url's host: lower case, no brackets, no zone; for allow_hosts names */
	struct hdrs headers;  /* connector-level static headers */
	struct hdrs auth;     /* the credential header line, if any */
	char *secrets[HTTP_SECRETS_MAX]; /* resolved values, for redaction */
	size_t nsecrets;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mu;
	CURL *pool[HTTP_POOL_MAX];
	size_t npool;
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	struct http_conn *hc = ud;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&hc->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	struct http_conn *hc = ud;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&hc->share_mu[data]);
}

static void share_init(struct http_conn *hc)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&hc->share_mu[i], NULL);
	hc->share = curl_share_init();
	if (!hc->share)
		return; /* calls work without it, only without shared caches */
	curl_share_setopt(hc->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(hc->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(hc->share, CURLSHOPT_USERDATA, hc);
	curl_share_setopt(hc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(hc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

static void keep_secret(struct http_conn *hc, struct sl_conf_ctx *ctx, const char *pointer, char *value)
{
	if (!value)
		return;
	if (hc->nsecrets == HTTP_SECRETS_MAX) {
		sl_conf_error(ctx, pointer, "too many secrets in one connector (at most %d)", HTTP_SECRETS_MAX);
		sl_secret_free(value);
		return;
	}
	hc->secrets[hc->nsecrets++] = value;
}

static CURL *pool_get(struct http_conn *hc)
{
	CURL *h = NULL;
	pthread_mutex_lock(&hc->pool_mu);
	if (hc->npool)
		h = hc->pool[--hc->npool];
	pthread_mutex_unlock(&hc->pool_mu);
	return h ? h : curl_easy_init();
}

/* Reset drops every option (and so every pointer into a finished call) but
 * keeps the handle's live connections for the next call. */
static void pool_put(struct http_conn *hc, CURL *h)
{
	curl_easy_reset(h);
	pthread_mutex_lock(&hc->pool_mu);
	if (hc->npool < HTTP_POOL_MAX) {
		hc->pool[hc->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&hc->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- config ---------------------------------------------------------------------- */

static const struct sl_conf_key http_keys[] = {
	{"base_url", SL_CONF_STRING, true, "http:// or https:// URL every action's path is appended to"},
	{"auth", SL_CONF_OBJECT, false,
	 "credentials: {type: bearer, token} | {type: api_key, header, value} | {type: basic, username, password}"},
	{"headers", SL_CONF_OBJECT, false, "static headers sent with every call (values may be env:/file: secrets)"},
	{"timeout", SL_CONF_DURATION, false, "whole-call timeout (default 10s)"},
	{"connect_timeout", SL_CONF_DURATION, false, "connection set-up timeout (default 3s)"},
	{"allow_hosts", SL_CONF_ARRAY, false,
	 "host names (or *.domain), IP addresses and CIDRs this connector may reach although they are "
	 "loopback, private, link-local or metadata destinations (default none)"},
	{"allow_link_local", SL_CONF_BOOL, false,
	 "allow link-local and cloud-metadata destinations such as 169.254.169.254 (default false)"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key http_action_keys[] = {
	{"method", SL_CONF_STRING, false, "GET, POST, PUT, PATCH or DELETE (default GET)"},
	{"path", SL_CONF_STRING, false, "appended to base_url; {field} is filled from the input, percent-encoded"},
	{"query", SL_CONF_JQ, false, "jq over the input yielding an object: the query string"},
	{"body", SL_CONF_JQ, false, "jq over the input yielding the JSON body (default: the input for POST/PUT/PATCH)"},
	{"headers", SL_CONF_OBJECT, false, "headers of this action (values may be env:/file: secrets)"},
	{"output", SL_CONF_JQ, false, "jq over {status, headers, body} yielding the step output (default: body)"},
	{"timeout", SL_CONF_DURATION, false, "timeout of this action (overrides the connector's)"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key auth_bearer_keys[] = {
	{"type", SL_CONF_STRING, true, "bearer"},
	{"token", SL_CONF_STRING, true, "env:NAME or file:PATH"},
	{NULL, 0, false, NULL},
};
static const struct sl_conf_key auth_api_key_keys[] = {
	{"type", SL_CONF_STRING, true, "api_key"},
	{"header", SL_CONF_STRING, false, "header name (default X-Api-Key)"},
	{"value", SL_CONF_STRING, true, "env:NAME or file:PATH"},
	{NULL, 0, false, NULL},
};
static const struct sl_conf_key auth_basic_keys[] = {
	{"type", SL_CONF_STRING, true, "basic"},
	{"username", SL_CONF_STRING, true, "user name (plain, or env:/file:)"},
	{"password", SL_CONF_STRING, true, "env:NAME or file:PATH"},
	{NULL, 0, false, NULL},
};

static bool url_has_userinfo(const char *url)
{
	const char *auth = strstr(url, "://");
	if (!auth)
		return false;
	auth += 3;
	size_t n = strcspn(auth, "/");
	return memchr(auth, '@', n) != NULL;
}

/* "[::1]" -> "::1", "Helpdesk.Internal." -> "helpdesk.internal": the form
 * allow_hosts names are compared with. */
static char *url_host_plain(const char *host)
{
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	const char *zone = memchr(host, '%', n);
	if (zone)
		n = (size_t)(zone - host);
	if (n && host[n - 1] == '.')
		n--;
	char *out = sl_strndup(host, n);
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return out;
}

static void init_base_url(struct http_conn *hc, const json_t *doc, struct sl_conf_ctx *ctx)
{
	const char *url = sl_conf_str(doc, "base_url", NULL);
	if (!url)
		return; /* reported as missing by the key check */
	if (!sl_str_startswith(url, "http://") && !sl_str_startswith(url, "https://")) {
		sl_conf_error(ctx, "/base_url", "base_url must start with http:// or https://");
		return;
	}
	if (strpbrk(url, "?#")) {
		sl_conf_error(ctx, "/base_url", "base_url may not hold a query or fragment: use an action's query:");
		return;
	}
	if (url_has_userinfo(url)) {
		sl_conf_error(ctx, "/base_url", "base_url may not hold credentials: use auth: with env:NAME or file:PATH");
		return;
	}
	CURLU *u = curl_url();
	CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
	char *host = NULL;
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (u)
		curl_url_cleanup(u);
	if (uc != CURLUE_OK) {
		sl_conf_error(ctx, "/base_url", "base_url is not a valid URL: %s", curl_url_strerror(uc));
		return;
	}
	hc->host = url_host_plain(host);
	curl_free(host);
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	hc->base_url = sl_strndup(url, n);
}

static void base64_encode(const char *in, size_t n, struct sl_buf *out)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)in;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		sl_buf_addc(out, tbl[(v >> 18) & 63]);
		sl_buf_addc(out, tbl[(v >> 12) & 63]);
		sl_buf_addc(out, i + 1 < n ? tbl[(v >> 6) & 63] : '=');
		sl_buf_addc(out, i + 2 < n ? tbl[v & 63] : '=');
	}
}

/* username may be plain (it is not a secret) or a reference. */
static char *basic_username(const json_t *auth, struct sl_conf_ctx *ctx)
{
	const char *u = sl_conf_str(auth, "username", NULL);
	if (!u || !sl_secret_is_ref(u))
		return sl_strdup(u);
	char *v = NULL;
	if (sl_conf_secret(ctx, auth, "/auth", "username", true, &v) != 0 || !v)
		return NULL;
	return v;
}

static void init_auth_basic(struct http_conn *hc, const json_t *auth, struct sl_conf_ctx *ctx)
{
	char *pw = NULL;
	char *user = basic_username(auth, ctx);
	if (sl_conf_secret(ctx, auth, "/auth", "password", true, &pw) != 0 || !pw || !user) {
		sl_secret_free(pw);
		sl_secret_free(user);
		return;
	}
	struct sl_buf plain, enc;
	sl_buf_init(&plain, 64 * 1024);
	sl_buf_init(&enc, 128 * 1024);
	sl_buf_printf(&plain, "%s:%s", user, pw);
	sl_buf_adds(&enc, "Basic ");
	base64_encode(plain.p ? plain.p : "", plain.len, &enc);
	if (!plain.err && !enc.err) {
		hdrs_set(&hc->auth, "Authorization", enc.p);
		keep_secret(hc, ctx, "/auth", sl_strdup(enc.p + 6));
	}
	if (plain.p)
		explicit_bzero(plain.p, plain.len);
	if (enc.p)
		explicit_bzero(enc.p, enc.len);
	sl_buf_free(&plain);
	sl_buf_free(&enc);
	keep_secret(hc, ctx, "/auth/password", pw);
	sl_secret_free(user);
}

static void init_auth(struct http_conn *hc, const json_t *doc, struct sl_conf_ctx *ctx)
{
	const json_t *auth = json_object_get(doc, "auth");
	if (!json_is_object(auth))
		return; /* absent, or reported by the key check */
	const char *type = sl_conf_str(auth, "type", NULL);
	static const char *const types[] = {"bearer", "api_key", "basic", NULL};
	const struct sl_conf_key *keys = NULL;
	if (type && strcmp(type, "bearer") == 0)
		keys = auth_bearer_keys;
	else if (type && strcmp(type, "api_key") == 0)
		keys = auth_api_key_keys;
	else if (type && strcmp(type, "basic") == 0)
		keys = auth_basic_keys;
	if (!keys) {
		const char *best = type ? sl_did_you_mean(type, types) : NULL;
		sl_conf_error(ctx, type ? "/auth/type" : "/auth", "auth type must be bearer, api_key or basic%s%s%s",
			      best ? " (did you mean \"" : "", best ? best : "", best ? "\"?)" : "");
		return;
	}
	if (sl_conf_check_keys(ctx, auth, "/auth", keys))
		return;
	char *v = NULL;
	if (keys == auth_bearer_keys) {
		if (sl_conf_secret(ctx, auth, "/auth", "token", true, &v) == 0 && v) {
			char *line = sl_asprintf("Bearer %s", v);
			hdrs_set(&hc->auth, "Authorization", line);
			sl_secret_free(line);
			keep_secret(hc, ctx, "/auth/token", v);
		}
	} else if (keys == auth_api_key_keys) {
		const char *name = sl_conf_str(auth, "header", "X-Api-Key");
		if (!header_name_ok(name)) {
			sl_conf_error(ctx, "/auth/header", "\"%s\" is not a valid header name", name);
			return;
		}
		if (sl_conf_secret(ctx, auth, "/auth", "value", true, &v) == 0 && v) {
			hdrs_set(&hc->auth, name, v);
			keep_secret(hc, ctx, "/auth/value", v);
		}
	} else {
		init_auth_basic(hc, auth, ctx);
	}
}

/* Headers sluice sets itself per call, or that would break framing. */
static bool header_reserved(const char *name)
{
	static const char *const reserved[] = {"Content-Length", "Transfer-Encoding", "Idempotency-Key",
					       "X-Correlation-Id", "traceparent", "Expect", NULL};
	for (int i = 0; reserved[i]; i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return true;
	return false;
}

static bool header_holds_credentials(const char *name)
{
	return strcasecmp(name, "Authorization") == 0 || strcasecmp(name, "Proxy-Authorization") == 0;
}

/* Reads a `headers:` block into h. Values that are env:/file: references are
 * resolved like any secret; a plain Authorization value is refused. */
static void parse_headers(struct http_conn *hc, const json_t *obj, const char *pointer, struct hdrs *h,
			  struct sl_conf_ctx *ctx)
{
	const char *name;
	json_t *v;
	json_object_foreach((json_t *)obj, name, v) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, pointer, name);
		if (!header_name_ok(name)) {
			sl_conf_error(ctx, p, "\"%s\" is not a valid header name", name);
			continue;
		}
		if (header_reserved(name)) {
			sl_conf_error(ctx, p, "header %s is set by sluice and may not be configured", name);
			continue;
		}
		char num[32];
		const char *val = json_string_value(v);
		if (json_is_integer(v)) {
			snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			val = num;
		}
		if (!val || !header_value_ok(val)) {
			sl_conf_error(ctx, p, "header %s must be a string without control characters", name);
			continue;
		}
		if (!sl_secret_is_ref(val)) {
			if (header_holds_credentials(name))
				sl_conf_error(ctx, p, "header %s holds a plain value: use auth: or env:NAME / "
						      "file:PATH for secrets", name);
			else if (hdrs_set(h, name, val))
				sl_conf_error(ctx, p, "too many headers (at most %d)", HTTP_HEADER_LINES_MAX);
			continue;
		}
		char *secret = NULL;
		if (sl_conf_secret(ctx, obj, pointer, name, true, &secret) != 0 || !secret)
			continue;
		if (!header_value_ok(secret)) {
			sl_conf_error(ctx, p, "the secret for header %s holds control characters", name);
			sl_secret_free(secret);
			continue;
		}
		hdrs_set(h, name, secret);
		keep_secret(hc, ctx, p, secret);
	}
}

static int http_init(struct sl_connector *c, struct sl_conf_ctx *ctx)
{
	pthread_once(&curl_once, curl_init_once);
	int before = ctx->nerrors;
	struct http_conn *hc = sl_xcalloc(1, sizeof *hc);
	c->priv = hc;
	pthread_mutex_init(&hc->pool_mu, NULL);
	share_init(hc);
	const json_t *doc = c->config;
	init_base_url(hc, doc, ctx);
	hc->timeout_ms = sl_conf_duration(ctx, doc, "", "timeout", HTTP_DEFAULT_TIMEOUT_MS);
	hc->connect_timeout_ms = sl_conf_duration(ctx, doc, "", "connect_timeout", HTTP_DEFAULT_CONNECT_TIMEOUT_MS);
	hc->allow_link_local = sl_conf_bool(doc, "allow_link_local", false);
	sl_allow_list_parse(ctx, json_object_get(doc, "allow_hosts"), "/allow_hosts", &hc->allow);
	const json_t *headers = json_object_get(doc, "headers");
	if (json_is_object(headers))
		parse_headers(hc, headers, "/headers", &hc->headers, ctx);
	init_auth(hc, doc, ctx);
	return ctx->nerrors - before;
}

static void http_close(struct sl_connector *c)
{
	struct http_conn *hc = c->priv;
	if (!hc)
		return;
	for (size_t i = 0; i < hc->npool; i++)
		curl_easy_cleanup(hc->pool[i]);
	if (hc->share)
		curl_share_cleanup(hc->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&hc->share_mu[i]);
	pthread_mutex_destroy(&hc->pool_mu);
	hdrs_free(&hc->headers);
	hdrs_free(&hc->auth);
	for (size_t i = 0; i < hc->nsecrets; i++)
		sl_secret_free(hc->secrets[i]);
	free(hc->base_url);
	free(hc->host);
	sl_allow_list_free(&hc->allow);
	free(hc);
	c->priv = NULL;
}

/* ---- actions ----------------------------------------------------------------------- */

struct http_action {
	const char *method; /* static string */
	char *path;         /* template, "" when none */
	struct sl_expr *query, *body, *output;
	struct hdrs headers; /* defaults, connector, action, auth: merged */
	bool default_body;   /* no body: program, and the method carries one */
	int64_t timeout_ms;  /* 0: the connector's */
};

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static const char *parse_method(struct sl_conf_ctx *ctx, const json_t *block, const char *pointer)
{
	const char *m = sl_conf_str(block, "method", "GET");
	for (int i = 0; methods[i]; i++)
		if (strcasecmp(m, methods[i]) == 0)
			return methods[i];
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, pointer, "method");
	sl_conf_error(ctx, p, "unknown method \"%s\" (want GET, POST, PUT, PATCH or DELETE)", m);
	return NULL;
}

static bool placeholder_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '-' || ch == '.';
}

/* Checks a path template once at load, so a call only fills it in. */
static bool path_template_ok(const char *t, char *why, size_t whylen)
{
	if (*t && *t != '/') {
		snprintf(why, whylen, "path must start with /");
		return false;
	}
	for (const char *p = t; *p; p++) {
		if (*p == '{') {
			const char *end = strchr(p, '}');
			const char *q = p + 1;
			while (q < (end ? end : p + strlen(p)) && placeholder_char(*q))
				q++;
			if (!end || q != end || end == p + 1) {
				snprintf(why, whylen, "placeholder at offset %d must look like {field} or {a.b}",
					 (int)(p - t));
				return false;
			}
			p = end;
		} else if (*p == '}') {
			snprintf(why, whylen, "unmatched } at offset %d", (int)(p - t));
			return false;
		} else if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#') {
			snprintf(why, whylen, "path may not hold spaces, control characters, ? or # (use query:)");
			return false;
		}
	}
	return true;
}

static struct sl_expr *compile_jq(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
				  const char *pointer, const char *key)
{
	const char *src = sl_conf_str(a->config, key, NULL);
	if (!src)
		return NULL;
	char p[SL_CONF_PTR_MAX], what[256];
	sl_conf_ptr(p, pointer, key);
	snprintf(what, sizeof what, "connector %s action %s: %s", c->name, a->name, key);
	struct sl_expr_origin origin;
	sl_conf_origin(ctx, p, what, &origin, NULL, NULL);
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_expr *e = sl_expr_compile(src, &origin, &err);
	if (!e)
		sl_conf_error(ctx, p, "%s", err.msg);
	return e;
}

/* Copies the lines of from into to, each replacing a line of the same name. */
static void hdrs_merge(struct hdrs *to, const struct hdrs *from)
{
	for (size_t i = 0; i < from->n; i++) {
		const char *line = from->v[i];
		const char *colon = strchr(line, ':');
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)(colon - line), line);
		hdrs_set(to, name, colon + 2);
	}
}

/* Precedence, lowest first: sluice's defaults, the connector's headers, the
 * action's headers, then the credentials, so no header can shadow them. */
static void action_headers(struct http_conn *hc, struct http_action *ha, const json_t *block,
			   const char *pointer, struct sl_conf_ctx *ctx)
{
	hdrs_set(&ha->headers, "Accept", "application/json");
	hdrs_set(&ha->headers, "User-Agent", HTTP_USER_AGENT);
	hdrs_merge(&ha->headers, &hc->headers);
	const json_t *h = json_object_get(block, "headers");
	if (json_is_object(h)) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, pointer, "headers");
		parse_headers(hc, h, p, &ha->headers, ctx);
	}
	hdrs_merge(&ha->headers, &hc->auth);
}

static int http_action_init(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
			    const char *pointer)
{
	struct http_conn *hc = c->priv;
	int before = ctx->nerrors;
	struct http_action *ha = sl_xcalloc(1, sizeof *ha);
	a->priv = ha;
	const json_t *block = a->config;
	ha->method = parse_method(ctx, block, pointer);
	ha->path = sl_strdup(sl_conf_str(block, "path", ""));
	char why[128];
	if (!path_template_ok(ha->path, why, sizeof why)) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, pointer, "path");
		sl_conf_error(ctx, p, "%s", why);
	}
	ha->query = compile_jq(c, a, ctx, pointer, "query");
	ha->body = compile_jq(c, a, ctx, pointer, "body");
	ha->output = compile_jq(c, a, ctx, pointer, "output");
	ha->default_body = !json_object_get(block, "body") && ha->method &&
			   (strcmp(ha->method, "POST") == 0 || strcmp(ha->method, "PUT") == 0 ||
			    strcmp(ha->method, "PATCH") == 0);
	ha->timeout_ms = sl_conf_duration(ctx, block, pointer, "timeout", 0);
	action_headers(hc, ha, block, pointer, ctx);
	return ctx->nerrors - before;
}

static void http_action_free(struct sl_action *a)
{
	struct http_action *ha = a->priv;
	if (!ha)
		return;
	free(ha->path);
	sl_expr_free(ha->query);
	sl_expr_free(ha->body);
	sl_expr_free(ha->output);
	hdrs_free(&ha->headers);
	free(ha);
	a->priv = NULL;
}

/* ---- building a request ------------------------------------------------------------- */

/* RFC 3986 unreserved characters pass; everything else is %XX, so a value
 * can never add a path segment, a query parameter or a fragment. */
static void percent_encode(struct sl_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '.' || ch == '_' || ch == '~') {
			sl_buf_addc(b, (char)ch);
		} else {
			sl_buf_addc(b, '%');
			sl_buf_addc(b, hex[ch >> 4]);
			sl_buf_addc(b, hex[ch & 15]);
		}
	}
}

/* A scalar as it appears in a URL; -1 for objects, arrays and null. */
static int scalar_text(const json_t *v, char *out, size_t cap, const char **s, size_t *n)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		*s = json_string_value(v);
		*n = json_string_length(v);
		return 0;
	case JSON_INTEGER:
		snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(out, cap, "%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(out, cap, "true");
		break;
	case JSON_FALSE:
		snprintf(out, cap, "false");
		break;
	default:
		return -1;
	}
	*s = out;
	*n = strlen(out);
	return 0;
}

static const json_t *lookup_field(const json_t *input, const char *name, size_t len)
{
	const json_t *v = input;
	const char *p = name, *end = name + len;
	while (p < end && v) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t seg = dot ? (size_t)(dot - p) : (size_t)(end - p);
		v = json_is_object(v) ? json_object_getn(v, p, seg) : NULL;
		p += seg + (dot ? 1 : 0);
	}
	return v;
}

static int expand_path(const char *tmpl, const json_t *input, struct sl_buf *url, struct sl_err *err)
{
	for (const char *p = tmpl; *p; p++) {
		if (*p != '{') {
			sl_buf_addc(url, *p);
			continue;
		}
		const char *end = strchr(p, '}'); /* checked at load */
		size_t len = (size_t)(end - p - 1);
		const json_t *v = lookup_field(input, p + 1, len);
		char num[64];
		const char *s;
		size_t n;
		if (!v || json_is_null(v))
			return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
					  "path placeholder {%.*s}: the input has no field %.*s", (int)len, p + 1,
					  (int)len, p + 1);
		if (scalar_text(v, num, sizeof num, &s, &n) != 0)
			return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
					  "path placeholder {%.*s}: the field is not a string, number or boolean",
					  (int)len, p + 1);
		percent_encode(url, s, n);
		p = end;
	}
	return 0;
}

static int add_query_param(struct sl_buf *url, bool *first, const char *key, const json_t *v, struct sl_err *err)
{
	char num[64];
	const char *s;
	size_t n;
	if (json_is_null(v))
		return 0;
	if (scalar_text(v, num, sizeof num, &s, &n) != 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
				  "query parameter %s must be a string, number, boolean or a list of them", key);
	sl_buf_addc(url, *first ? '?' : '&');
	*first = false;
	percent_encode(url, key, strlen(key));
	sl_buf_addc(url, '=');
	percent_encode(url, s, n);
	return 0;
}

static int build_query(struct sl_expr *q, const json_t *input, struct sl_buf *url, struct sl_err *err)
{
	json_t *obj = NULL;
	int rc = sl_expr_eval(q, input, &obj, err);
	if (rc)
		return rc;
	if (!json_is_object(obj) && !json_is_null(obj)) {
		json_decref(obj);
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "query must yield an object");
	}
	bool first = true;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (json_is_array(v)) {
			size_t i;
			json_t *item;
			json_array_foreach(v, i, item) {
				if ((rc = add_query_param(url, &first, key, item, err)) != 0)
					break;
			}
		} else {
			rc = add_query_param(url, &first, key, v, err);
		}
		if (rc)
			break;
	}
	json_decref(obj);
	return rc;
}

/* One call's request and response. */
struct http_xfer {
	struct http_conn *hc;
	const struct http_action *ha;
	struct sl_buf url;     /* base + path + query */
	size_t url_shown;      /* length quoted in messages: the query may hold secrets */
	char *body;            /* request body (owned) or NULL */
	size_t body_len;
	struct curl_slist *hdrs;
	struct sl_buf resp;    /* response body, capped */
	struct sl_buf resp_hdrs; /* header lines of the final response */
	bool refused;          /* the open-socket callback refused an address */
	enum sl_addr_class refused_class;
	char refused_addr[INET6_ADDRSTRLEN];
	int opened;            /* sockets the callback let curl open */
	char errbuf[CURL_ERROR_SIZE];
};

static int build_url(struct http_xfer *x, const json_t *input, struct sl_err *err)
{
	sl_buf_adds(&x->url, x->hc->base_url);
	int rc = expand_path(x->ha->path, input, &x->url, err);
	x->url_shown = x->url.len;
	if (rc == 0 && x->ha->query)
		rc = build_query(x->ha->query, input, &x->url, err);
	if (rc == 0 && x->url.err)
		rc = sl_err_set(err, SL_ETOOBIG, SL_CLASS_PERMANENT, "URL longer than %d bytes", HTTP_URL_MAX);
	return rc;
}

static int build_body(struct http_xfer *x, const json_t *input, struct sl_err *err)
{
	json_t *value = NULL;
	if (x->ha->body) {
		int rc = sl_expr_eval(x->ha->body, input, &value, err);
		if (rc)
			return rc;
	} else if (x->ha->default_body && input) {
		value = json_incref((json_t *)input);
	}
	/* A null body means "no body": an API never wants the literal null. */
	if (value && !json_is_null(value)) {
		x->body = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | SL_JSON_REAL);
		x->body_len = x->body ? strlen(x->body) : 0;
	}
	bool failed = value && !json_is_null(value) && !x->body;
	json_decref(value);
	if (failed)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "the request body cannot be encoded as JSON");
	if (x->body_len > SL_BUF_MAX_HTTP_BODY)
		return sl_err_set(err, SL_ETOOBIG, SL_CLASS_PERMANENT, "request body larger than %d bytes",
				  SL_BUF_MAX_HTTP_BODY);
	return 0;
}

static struct curl_slist *slist_add(struct curl_slist *l, const char *line, bool *oom)
{
	struct curl_slist *n = curl_slist_append(l, line);
	if (!n) {
		*oom = true;
		return l;
	}
	return n;
}

static int build_headers(struct http_xfer *x, const struct sl_call *call, struct sl_err *err)
{
	const char *ids[2] = {call->idempotency_key, call->correlation_id};
	for (int i = 0; i < 2; i++)
		if (ids[i] && (!*ids[i] || !header_value_ok(ids[i]) || strlen(ids[i]) > 1024))
			return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "%s is empty, too long or holds "
					  "control characters", i ? "the correlation id" : "the idempotency key");
	bool oom = false;
	struct curl_slist *l = NULL;
	for (size_t i = 0; i < x->ha->headers.n; i++)
		l = slist_add(l, x->ha->headers.v[i], &oom);
	char line[1100];
	if (!hdrs_has(&x->ha->headers, "Content-Type")) {
		/* "Content-Type:" with no value removes curl's form default. */
		const char *ct = call->content_type && header_value_ok(call->content_type) ? call->content_type
											  : "application/json";
		snprintf(line, sizeof line, "Content-Type: %.1000s", ct);
		l = slist_add(l, x->body ? line : "Content-Type:", &oom);
	}
	l = slist_add(l, "Expect:", &oom); /* no 100-continue round trip */
	if (call->idempotency_key) {
		snprintf(line, sizeof line, "Idempotency-Key: %s", call->idempotency_key);
		l = slist_add(l, line, &oom);
	}
	if (call->correlation_id) {
		snprintf(line, sizeof line, "X-Correlation-Id: %s", call->correlation_id);
		l = slist_add(l, line, &oom);
		char tp[56];
		sl_traceparent(call->correlation_id, tp);
		snprintf(line, sizeof line, "traceparent: %s", tp);
		l = slist_add(l, line, &oom);
	}
	x->hdrs = l;
	return oom ? sl_err_set(err, SL_ENOMEM, SL_CLASS_TRANSIENT, "out of memory building headers") : 0;
}

/* curl copies header lines; the copies may hold credentials. */
static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *s = l; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(l);
}

/* ---- curl callbacks ----------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct http_xfer *x = ud;
	size_t n = size * nmemb;
	/* Returning less than n aborts the transfer: the cap is enforced as the
	 * bytes arrive, not after they have all been held in memory. */
	return sl_buf_add(&x->resp, ptr, n) == 0 ? n : 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct http_xfer *x = ud;
	size_t n = size * nmemb;
	/* A new status line (after a 1xx) starts the final response's headers. */
	if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
		sl_buf_reset(&x->resp_hdrs);
	sl_buf_add(&x->resp_hdrs, ptr, n); /* past the cap the rest is dropped */
	return n;
}

/* The verdict on the address curl is about to connect to; text gets the
 * address as text. Anything but IPv4 and IPv6 (curl opens nothing else for
 * http) is refused. */
static enum sl_addr_class socket_verdict(const struct http_xfer *x, const struct curl_sockaddr *sa, char *text,
					 size_t cap)
{
	snprintf(text, cap, "(family %d)", sa->family);
	if (sa->family == AF_INET && sa->addrlen >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;
		memcpy(&in, &sa->addr, sizeof in);
		inet_ntop(AF_INET, &in.sin_addr, text, (socklen_t)cap);
		return sl_outbound_check(&x->hc->allow, x->hc->allow_link_local, x->hc->host, AF_INET, &in.sin_addr);
	}
	if (sa->family == AF_INET6 && sa->addrlen >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;
		memcpy(&in6, &sa->addr, sizeof in6);
		inet_ntop(AF_INET6, &in6.sin6_addr, text, (socklen_t)cap);
		return sl_outbound_check(&x->hc->allow, x->hc->allow_link_local, x->hc->host, AF_INET6,
					 in6.sin6_addr.s6_addr);
	}
	return SL_ADDR_RESERVED;
}

/* Runs for every connection curl makes (each address it tries, a proxy,
 * a redirect if one were ever followed): refusing here means no packet is
 * sent to the address. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct http_xfer *x = ud;
	char text[INET6_ADDRSTRLEN + 16];
	enum sl_addr_class c = socket_verdict(x, sa, text, sizeof text);
	if (c != SL_ADDR_PUBLIC) {
		x->refused = true;
		x->refused_class = c;
		snprintf(x->refused_addr, sizeof x->refused_addr, "%s", text);
		return CURL_SOCKET_BAD;
	}
	curl_socket_t fd = socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
	if (fd != CURL_SOCKET_BAD)
		x->opened++;
	return fd;
}

/* ---- performing a call -------------------------------------------------------------- */

static int64_t call_timeout(const struct http_xfer *x, const struct sl_call *call)
{
	if (call->timeout_ms > 0)
		return call->timeout_ms;
	return x->ha->timeout_ms > 0 ? x->ha->timeout_ms : x->hc->timeout_ms;
}

static void set_method(CURL *h, const struct http_xfer *x)
{
	const char *m = x->ha->method;
	bool carries = x->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
	if (carries) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body ? x->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(m, "POST") != 0 && (carries || strcmp(m, "GET") != 0))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

static CURLcode perform(CURL *h, struct http_xfer *x, int64_t timeout_ms)
{
	curl_easy_setopt(h, CURLOPT_URL, sl_buf_str(&x->url));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a 3xx is an error (docs/reference/connectors.md) */
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)SL_MIN(x->hc->connect_timeout_ms, timeout_ms));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SL_BUF_MAX_HTTP_BODY);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	if (x->hc->share)
		curl_easy_setopt(h, CURLOPT_SHARE, x->hc->share);
	set_method(h, x);
	return curl_easy_perform(h);
}

static int refusal(const struct http_xfer *x, const char *addr, enum sl_addr_class c, struct sl_err *err)
{
	const char *host = x->hc->host;
	/* A host that is itself an address (curl has normalised its spelling)
	 * adds nothing; a name shows where the address came from. */
	unsigned char bin[16];
	bool from = host && *host && strcmp(host, addr) != 0 && inet_pton(AF_INET, host, bin) != 1 &&
		    inet_pton(AF_INET6, host, bin) != 1;
	return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
			  "%s %.*s: destination %s%s%s%s is %s: add it to allow_hosts to allow it", x->ha->method,
			  (int)x->url_shown, sl_buf_str(&x->url), addr, from ? " (from " : "", from ? host : "",
			  from ? ")" : "", sl_addr_class_name(c));
}

static int curl_failure(const struct http_xfer *x, CURLcode cc, int64_t timeout_ms, struct sl_err *err)
{
	const char *m = x->ha->method;
	int shown = (int)x->url_shown;
	const char *url = sl_buf_str(&x->url);
	/* Refused and nothing else tried (with happy eyeballs another address
	 * may have been tried and failed on its own: that failure is the news). */
	if (x->refused && x->opened == 0)
		return refusal(x, x->refused_addr, x->refused_class, err);
	if (cc == CURLE_FILESIZE_EXCEEDED || (cc == CURLE_WRITE_ERROR && x->resp.err))
		return sl_err_set(err, SL_ETOOBIG, SL_CLASS_PERMANENT, "%s %.*s: response body larger than %d bytes",
				  m, shown, url, SL_BUF_MAX_HTTP_BODY);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return sl_err_set(err, SL_ETIMEOUT, SL_CLASS_TRANSIENT, "%s %.*s: timed out after %lld ms", m, shown,
				  url, (long long)timeout_ms);
	enum sl_class cls = SL_CLASS_TRANSIENT; /* connect, DNS, reset: may clear up */
	if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_BAD_FUNCTION_ARGUMENT)
		cls = SL_CLASS_PERMANENT;
	return sl_err_set(err, SL_EIO, cls, "%s %.*s: %s", m, shown, url,
			  x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
}

/* The value of header name in the final response's header lines, copied
 * into out; false when absent. */
static bool resp_header(const struct http_xfer *x, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = sl_buf_str(&x->resp_hdrs);
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t vl = len - nl - 1;
			while (vl && (*v == ' ' || *v == '\t'))
				v++, vl--;
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			snprintf(out, cap, "%.*s", (int)vl, v);
			return true;
		}
		p += len + (eol ? 1 : 0);
	}
	return false;
}

/* The first bytes of a body, printable, cut on a UTF-8 boundary. */
static void body_snippet(const struct sl_buf *b, char *out, size_t cap)
{
	size_t n = SL_MIN(b->len, (size_t)HTTP_SNIPPET_MAX);
	n = SL_MIN(n, cap - 4);
	while (n > 0 && n < b->len && ((unsigned char)b->p[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)b->p[i];
		out[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
	}
	memcpy(out + n, n < b->len ? "..." : "", n < b->len ? 4 : 1);
}

static int status_failure(const struct http_xfer *x, long status, struct sl_err *err)
{
	enum sl_class cls = sl_http_status_class((int)status);
	if (cls == SL_CLASS_NONE)
		cls = SL_CLASS_PERMANENT; /* a redirect or an odd status: retrying will not change it */
	char snippet[HTTP_SNIPPET_MAX + 8];
	body_snippet(&x->resp, snippet, sizeof snippet);
	sl_err_set(err, SL_ESTEP, cls, "%s %.*s: HTTP %ld%s%s", x->ha->method, (int)x->url_shown,
		   sl_buf_str(&x->url), status, snippet[0] ? ": " : "", snippet);
	err->http_status = (int)status;
	char ra[128];
	if (resp_header(x, "Retry-After", ra, sizeof ra))
		err->retry_after_ms = sl_retry_after_parse(ra, sl_now_ms());
	return SL_ESTEP;
}

static json_t *resp_headers_json(const struct http_xfer *x)
{
	json_t *o = json_object();
	const char *p = sl_buf_str(&x->resp_hdrs);
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		if (colon && colon > p && !sl_str_startswith(p, "HTTP/")) {
			char name[128];
			size_t nl = SL_MIN((size_t)(colon - p), sizeof name - 1);
			for (size_t i = 0; i < nl; i++)
				name[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
			name[nl] = '\0';
			const char *v = colon + 1;
			size_t vl = len - (size_t)(colon - p) - 1;
			while (vl && (*v == ' ' || *v == '\t'))
				v++, vl--;
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			/* Repeated headers are joined as RFC 9110 §5.3 allows. */
			const char *old = json_string_value(json_object_get(o, name));
			char *text = old ? sl_asprintf("%s, %.*s", old, (int)vl, v) : sl_strndup(v, vl);
			json_t *val = json_string(text); /* NULL for invalid UTF-8: dropped */
			free(text);
			if (val)
				json_object_set_new(o, name, val);
		}
		p += len + (eol ? 1 : 0);
	}
	return o;
}

static int parse_body(const struct http_xfer *x, json_t **out, struct sl_err *err)
{
	if (x->resp.len == 0) {
		*out = json_null();
		return 0;
	}
	json_error_t je;
	*out = json_loadb(x->resp.p, x->resp.len, JSON_DECODE_ANY, &je);
	if (!*out)
		*out = json_stringn(x->resp.p, x->resp.len); /* text stays text */
	if (!*out)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "%s %.*s: response body is neither JSON nor "
				  "UTF-8 text", x->ha->method, (int)x->url_shown, sl_buf_str(&x->url));
	return 0;
}

static int success_output(const struct http_xfer *x, long status, struct sl_call_result *res, struct sl_err *err)
{
	json_t *body = NULL;
	int rc = parse_body(x, &body, err);
	if (rc)
		return rc;
	if (!x->ha->output) {
		res->output = body;
		return 0;
	}
	json_t *in = json_pack("{s:i, s:o, s:o}", "status", (json_int_t)status, "headers", resp_headers_json(x),
			       "body", body);
	if (!in)
		return sl_err_set(err, SL_ENOMEM, SL_CLASS_TRANSIENT, "out of memory");
	rc = sl_expr_eval(x->ha->output, in, &res->output, err);
	json_decref(in);
	return rc;
}

static void xfer_free(struct http_xfer *x)
{
	sl_buf_free(&x->url);
	free(x->body);
	slist_wipe_free(x->hdrs);
	sl_buf_free(&x->resp);
	sl_buf_free(&x->resp_hdrs);
}

static int http_exchange(struct http_xfer *x, const struct sl_call *call, struct sl_call_result *res,
			 struct sl_err *err)
{
	if (sl_outbound_name_refused(&x->hc->allow, x->hc->allow_link_local, x->hc->host))
		return refusal(x, x->hc->host, SL_ADDR_METADATA, err); /* not even resolved */
	CURL *h = pool_get(x->hc);
	if (!h)
		return sl_err_set(err, SL_ENOMEM, SL_CLASS_TRANSIENT, "cannot create a curl handle");
	int64_t timeout_ms = call_timeout(x, call);
	CURLcode cc = perform(h, x, timeout_ms);
	long status = 0;
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	pool_put(x->hc, h);
	if (cc != CURLE_OK)
		return curl_failure(x, cc, timeout_ms, err);
	res->status = (int)status;
	if (status < 200 || status > 299)
		return status_failure(x, status, err);
	return success_output(x, status, res, err);
}

static int http_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		     struct sl_call_result *res, struct sl_err *err)
{
	struct http_conn *hc = c->priv;
	const struct http_action *ha = a->priv;
	if (curl_init_rc != CURLE_OK)
		return sl_err_set(err, SL_EIO, SL_CLASS_TRANSIENT, "libcurl failed to initialise");
	if (!hc || !ha || !hc->base_url || !ha->method)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "connector %s is not fully configured", c->name);
	struct http_xfer x;
	memset(&x, 0, sizeof x);
	x.hc = hc;
	x.ha = ha;
	sl_buf_init(&x.url, HTTP_URL_MAX);
	sl_buf_init(&x.resp, SL_BUF_MAX_HTTP_BODY);
	sl_buf_init(&x.resp_hdrs, HTTP_RESP_HEADERS_MAX);
	const json_t *input = call->input ? call->input : json_null();
	int rc = build_url(&x, input, err);
	if (rc == 0)
		rc = build_body(&x, input, err);
	if (rc == 0)
		rc = build_headers(&x, call, err);
	if (rc == 0)
		rc = http_exchange(&x, call, res, err);
	xfer_free(&x);
	if (rc) {
		json_decref(res->output);
		res->output = NULL;
		sl_redact_secrets(err->msg, sizeof err->msg, (const char *const *)hc->secrets, hc->nsecrets);
	}
	return rc;
}

static const char *const no_builtins[] = {NULL};

const struct sl_connector_type sl_conn__http_type = {
	.name = "http",
	.description = "declarative REST calls: base URL, auth, path templates, jq for query, body and output",
	.keys = http_keys,
	.action_keys = http_action_keys,
	.builtin_actions = no_builtins,
	.init_fn = http_init,
	.action_init_fn = http_action_init,
	.call_fn = http_call,
	.poll_fn = NULL,
	.action_free_fn = http_action_free,
	.close_fn = http_close,
};
