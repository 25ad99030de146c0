/* sim_http.h: a tiny libcurl HTTP client for the simulator unit tests
 * (test_sim.c, test_sim_model.c). Header-only: each test is one .c file. */
#ifndef SL_TEST_SIM_HTTP_H
#define SL_TEST_SIM_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

struct http {
	long status;
	CURLcode curl_rc;
	struct sl_buf body;
	char link[512], retry_after[32], ctype[128], allow[64];
	json_t *json; /* body parsed, NULL when not JSON */
};

static inline size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	sl_buf_add(ud, p, sz * n);
	return sz * n;
}

static inline void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	if (len <= nl || strncasecmp(line, name, nl) != 0)
		return;
	const char *v = line + nl;
	size_t vl = len - nl;
	while (vl && (*v == ' '))
		v++, vl--;
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
		vl--;
	snprintf(out, cap, "%.*s", (int)vl, v);
}

static inline size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct http *h = ud;
	header_value(p, sz * n, "Link:", h->link, sizeof h->link);
	header_value(p, sz * n, "Retry-After:", h->retry_after, sizeof h->retry_after);
	header_value(p, sz * n, "Content-Type:", h->ctype, sizeof h->ctype);
	header_value(p, sz * n, "Allow:", h->allow, sizeof h->allow);
	return sz * n;
}

static inline void http_free(struct http *h)
{
	sl_buf_free(&h->body);
	json_decref(h->json);
	memset(h, 0, sizeof *h);
}

/* One request; extra is a header line or NULL; timeout_ms 0 = 5 s. */
static inline void req_full(struct http *h, int port, const char *method, const char *path, const char *body,
		     size_t body_len, const char *extra, const char *extra2, long timeout_ms)
{
	memset(h, 0, sizeof *h);
	sl_buf_init(&h->body, SL_BUF_MAX_HTTP_BODY);
	char url[1024];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	CURL *c = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	if (extra)
		hd = curl_slist_append(hd, extra);
	if (extra2)
		hd = curl_slist_append(hd, extra2);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &h->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	h->curl_rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
	curl_slist_free_all(hd);
	curl_easy_cleanup(c);
	h->json = json_loadb(sl_buf_str(&h->body), h->body.len, JSON_DECODE_ANY, NULL);
}

static inline void req(struct http *h, int port, const char *method, const char *path, const char *body)
{
	req_full(h, port, method, path, body, body ? strlen(body) : 0, NULL, NULL, 0);
}

#endif
