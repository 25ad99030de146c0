/* fuzz_filerows: the file connector's reader (JSONL and CSV written by
 * other systems, possibly torn by a crash). The input is written to a file
 * and polled in small pages from the start; the reader must never crash,
 * must always move its cursor forward, and must stop. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/connector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_report(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	(void)ctx;
	(void)pointer;
	(void)msg;
}

static void poll_all(const char *path, const char *format)
{
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:[s,s,s]}", "connector", "f", "type", "file", "path", path,
				"format", format, "columns", "a", "b", "_idempotency_key");
	struct sl_conf_ctx ctx = {.file = "fuzz.yaml", .project_dir = "/tmp", .report_fn = no_report};
	struct sl_connector *c = sl_connector_new(doc, &ctx);
	json_decref(doc);
	if (!c)
		return;
	const struct sl_action *a = sl_connector_action(c, "read");
	char *cursor = NULL;
	for (int pages = 0; a && pages < 10000; pages++) {
		struct sl_poll_result res = {0};
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_connector_poll(c, a, cursor, 7, &res, &err))
			break;
		size_t n = json_array_size(res.records);
		json_decref(res.records);
		bool same = cursor && res.cursor && strcmp(cursor, res.cursor) == 0;
		free(cursor);
		cursor = res.cursor;
		if (n == 0 || same)
			break;
	}
	free(cursor);
	sl_connector_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/sluice-fuzz-rows.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	poll_all(path, "jsonl");
	poll_all(path, "csv");
	unlink(path);
	return 0;
}
