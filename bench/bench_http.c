/*
 * bench_http: a small load client for `sluice serve` (wrk is not on the
 * machine). Posts signed webhooks (X-Hub-Signature-256, a new delivery id
 * each) with C connections kept busy, and prints requests/s and the p50/p99
 * latency of the 2xx answers. Every 2xx is a durable accept: the server
 * answers only after the run is committed.
 *
 *   bench_http URL SECRET BODY.json CONNECTIONS REQUESTS
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

struct req {
	CURL *h;
	struct curl_slist *headers;
	int64_t started_us;
};

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void prepare(struct req *r, const char *url, const char *secret, const char *body, long seq)
{
	unsigned char mac[32];
	char hex[65], sig[100], id[64];
	sl_hmac_sha256(secret, strlen(secret), body, strlen(body), mac);
	sl_hex(mac, 32, hex);
	snprintf(sig, sizeof sig, "X-Hub-Signature-256: sha256=%s", hex);
	snprintf(id, sizeof id, "X-GitHub-Delivery: bench-%d-%ld", (int)getpid(), seq);
	curl_slist_free_all(r->headers);
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	r->headers = curl_slist_append(r->headers, sig);
	r->headers = curl_slist_append(r->headers, id);
	curl_easy_setopt(r->h, CURLOPT_URL, url);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, discard);
	r->started_us = sl_mono_us();
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: bench_http URL SECRET BODY.json CONNECTIONS REQUESTS\n");
		return 2;
	}
	const char *url = argv[1], *secret = argv[2];
	int conns = (int)strtol(argv[4], NULL, 10), total = (int)strtol(argv[5], NULL, 10);
	if (conns < 1 || total < conns) {
		fprintf(stderr, "bench_http: want CONNECTIONS >= 1 and REQUESTS >= CONNECTIONS\n");
		return 2;
	}
	char *body = NULL;
	struct sl_err err;
	if (sl_file_read(argv[3], 1 << 20, &body, NULL, &err)) {
		fprintf(stderr, "bench_http: %s\n", err.msg);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *m = curl_multi_init();
	struct req *reqs = sl_xcalloc((size_t)conns, sizeof *reqs);
	int64_t *lat = sl_xcalloc((size_t)total, sizeof *lat);
	long sent = 0, done = 0, ok = 0, bad = 0;
	int64_t t0 = sl_mono_us();
	for (int i = 0; i < conns && sent < total; i++) {
		reqs[i].h = curl_easy_init();
		curl_easy_setopt(reqs[i].h, CURLOPT_PRIVATE, &reqs[i]);
		prepare(&reqs[i], url, secret, body, sent++);
		curl_multi_add_handle(m, reqs[i].h);
	}
	while (done < total) {
		int running = 0;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct req *r = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			long status = 0;
			curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
				lat[ok++] = sl_mono_us() - r->started_us;
			else
				bad++;
			done++;
			curl_multi_remove_handle(m, r->h);
			if (sent < total) {
				prepare(r, url, secret, body, sent++);
				curl_multi_add_handle(m, r->h);
			}
		}
		if (done < total)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	double secs = (sl_mono_us() - t0) / 1e6;
	qsort(lat, (size_t)ok, sizeof *lat, cmp_i64);
	printf("%4d conns: %8.0f accepted/s  p50 %6.2f ms  p99 %6.2f ms  (%ld ok, %ld not 2xx)\n", conns, ok / secs,
	       ok ? lat[ok / 2] / 1000.0 : 0, ok ? lat[(size_t)(ok * 0.99)] / 1000.0 : 0, ok, bad);
	for (int i = 0; i < conns; i++) {
		if (reqs[i].h)
			curl_easy_cleanup(reqs[i].h);
		curl_slist_free_all(reqs[i].headers);
	}
	curl_multi_cleanup(m);
	curl_global_cleanup();
	free(reqs);
	free(lat);
	free(body);
	return bad ? 1 : 0;
}
