/*
 * http.c: the one HTTP exchange the model providers need: POST a JSON body,
 * read a JSON answer (libcurl). Like the http connector, it refuses
 * link-local and cloud-metadata destinations unless allowed, and never
 * lets the API key reach a message.
 */
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ai/provider.h"

#define AI_HTTP_BODY_MAX (8 * 1024 * 1024)
#define AI_HTTP_HEADERS_MAX (64 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
}

struct xfer {
	struct sl_buf body, headers;
	bool allow_link_local;
	bool refused;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	sl_buf_add(&x->body, p, size * n);
	return x->body.err ? 0 : size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	if (size * n >= 5 && memcmp(p, "HTTP/", 5) == 0)
		sl_buf_reset(&x->headers);
	sl_buf_add(&x->headers, p, size * n);
	return size * n;
}

static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *sa)
{
	(void)purpose;
	struct xfer *x = ud;
	if (!x->allow_link_local) {
		if (sa->family == AF_INET && sa->addrlen >= sizeof(struct sockaddr_in)) {
			struct sockaddr_in in;
			memcpy(&in, &sa->addr, sizeof in);
			x->refused = sl_addr_forbidden(AF_INET, &in.sin_addr);
		} else if (sa->family == AF_INET6 && sa->addrlen >= sizeof(struct sockaddr_in6)) {
			struct sockaddr_in6 in6;
			memcpy(&in6, &sa->addr, sizeof in6);
			x->refused = sl_addr_forbidden(AF_INET6, &in6.sin6_addr);
		}
		if (x->refused)
			return CURL_SOCKET_BAD;
	}
	return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

/* The Retry-After of the answer's headers, -1 when none. */
static int64_t retry_after(const char *headers)
{
	const char *p = headers;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
			char v[64];
			size_t vn = SL_MIN(n - 12, sizeof v - 1);
			memcpy(v, p + 12, vn);
			v[vn] = '\0';
			return sl_retry_after_parse(v, sl_now_ms());
		}
		p = eol ? eol + 1 : NULL;
	}
	return -1;
}

int ai_http_post(const char *url, const char *const *headers, const char *body, const char *correlation_id,
		 int64_t timeout_ms, bool allow_link_local, const char *secret, struct ai_http_reply *out,
		 struct sl_err *err)
{
	memset(out, 0, sizeof *out);
	out->retry_after_ms = -1;
	pthread_once(&curl_once, curl_init_once);
	CURL *h = curl_easy_init();
	if (!h)
		return sl_err_set(err, SL_ENOMEM, SL_CLASS_TRANSIENT, "cannot start an HTTP client");
	struct xfer x = {.allow_link_local = allow_link_local};
	sl_buf_init(&x.body, AI_HTTP_BODY_MAX);
	sl_buf_init(&x.headers, AI_HTTP_HEADERS_MAX);
	struct curl_slist *hl = NULL;
	for (size_t i = 0; headers && headers[i]; i++)
		hl = curl_slist_append(hl, headers[i]);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, "Accept: application/json");
	hl = curl_slist_append(hl, "Expect:");
	if (correlation_id) { /* the model call joins the run's trace */
		char line[SL_ID_MAX + 256], tp[56];
		snprintf(line, sizeof line, "X-Correlation-Id: %.200s", correlation_id);
		hl = curl_slist_append(hl, line);
		sl_traceparent(correlation_id, tp);
		snprintf(line, sizeof line, "traceparent: %s", tp);
		hl = curl_slist_append(hl, line);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice/0.1");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &x);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 60000));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	CURLcode cc = curl_easy_perform(h);
	int rc = 0;
	if (x.refused) {
		rc = sl_err_set(err, SL_EIO, SL_CLASS_PERMANENT,
				"refused: the model endpoint resolves to a link-local or metadata address "
				"(set allow_link_local: true on the provider if that is intended)");
	} else if (cc != CURLE_OK) {
		enum sl_class cls = cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ? SL_CLASS_PERMANENT
												: SL_CLASS_TRANSIENT;
		rc = sl_err_set(err, cc == CURLE_OPERATION_TIMEDOUT ? SL_ETIMEOUT : SL_EIO, cls, "model endpoint: %s",
				curl_easy_strerror(cc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
		json_error_t je;
		out->body = x.body.len ? json_loadb(x.body.p, x.body.len, 0, &je) : NULL;
		out->retry_after_ms = retry_after(sl_buf_str(&x.headers));
	}
	if (rc && secret && err) {
		const char *list[] = {secret};
		sl_redact_secrets(err->msg, sizeof err->msg, list, 1);
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	sl_buf_free(&x.body);
	sl_buf_free(&x.headers);
	return rc;
}

void ai_http_reply_free(struct ai_http_reply *r)
{
	json_decref(r->body);
	r->body = NULL;
}

int ai_http_error(const char *provider, const struct ai_http_reply *r, const char *message, struct sl_err *err)
{
	enum sl_class cls = sl_http_status_class((int)r->status);
	int rc = sl_err_set(err, SL_ESTEP, cls, "%s: HTTP %ld%s%s", provider, r->status, message ? ": " : "",
			    message ? message : "");
	if (err) {
		err->http_status = (int)r->status;
		if (r->retry_after_ms >= 0)
			err->retry_after_ms = r->retry_after_ms;
	}
	return rc;
}
