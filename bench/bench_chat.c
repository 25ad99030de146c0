/*
 * bench_chat: latency of OpenAI-style chat completions, one request at a
 * time on a kept-alive connection, so the figure is the server's added
 * work and not queueing. Prints p50/p99/mean in ms and requests/s.
 *
 *   bench_chat URL MODEL REQUESTS same|vary
 *
 * `vary` makes every prompt different (a counter in it), so a route's
 * cache never answers; `same` repeats one prompt (cache hits after the
 * first, when the route has a cache).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

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

int main(int argc, char **argv)
{
	if (argc != 5 || (strcmp(argv[4], "same") && strcmp(argv[4], "vary"))) {
		fprintf(stderr, "usage: bench_chat URL MODEL REQUESTS same|vary\n");
		return 2;
	}
	const char *url = argv[1], *model = argv[2];
	long n = strtol(argv[3], NULL, 10);
	bool vary = strcmp(argv[4], "vary") == 0;
	if (n < 1)
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	/* the gateway wants an API key (SLUICE_TOKEN); the simulator takes any */
	const char *tok = getenv("SLUICE_TOKEN");
	char *auth = sl_asprintf("Authorization: Bearer %s", tok && *tok ? tok : "bench");
	hdr = curl_slist_append(hdr, auth);
	free(auth);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	int64_t *lat = sl_xcalloc((size_t)n, sizeof *lat);
	long ok = 0, bad = 0;
	int64_t t_start = sl_mono_us();
	for (long i = 0; i < n; i++) {
		char body[512];
		snprintf(body, sizeof body,
			 "{\"model\":\"%s\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":"
			 "\"Summarize ticket %ld: the customer cannot log in after the password reset.\"}]}",
			 model, vary ? i : 0L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		int64_t t0 = sl_mono_us();
		CURLcode rc = curl_easy_perform(h);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (rc == CURLE_OK && status == 200)
			lat[ok++] = sl_mono_us() - t0;
		else if (bad++ == 0)
			fprintf(stderr, "bench_chat: status %ld (%s)\n", status, curl_easy_strerror(rc));
	}
	double secs = (double)(sl_mono_us() - t_start) / 1e6;
	qsort(lat, (size_t)ok, sizeof *lat, cmp_i64);
	double sum = 0;
	for (long i = 0; i < ok; i++)
		sum += (double)lat[i];
	if (ok)
		printf("%ld ok, %ld failed: p50 %.3f ms, p99 %.3f ms, mean %.3f ms, %.0f req/s\n", ok, bad,
		       (double)lat[ok / 2] / 1000.0, (double)lat[(ok * 99) / 100 >= ok ? ok - 1 : (ok * 99) / 100] / 1000.0,
		       sum / (double)ok / 1000.0, (double)ok / secs);
	else
		printf("0 ok, %ld failed\n", bad);
	free(lat);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return ok ? 0 : 1;
}
