/*
 * cmd_backfill.c: `sluice backfill DIR WORKFLOW --since DATE` walks a
 * polling sync's source from DATE and starts a run for every record not
 * synced before. The runs carry the poller's idempotency keys (record id
 * and version), so records the sync already has, or a second backfill over
 * the same span, start nothing. The runs are left in the store for
 * `sluice serve` or `sluice worker` to execute.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "engine/engine.h"
#include "store/store.h"

void help_backfill(FILE *out)
{
	fprintf(out,
		"Usage: sluice backfill [options] DIR WORKFLOW --since DATE\n\n"
		"Replays the history of WORKFLOW's polling sync (trigger {poll}) from DATE:\n"
		"the source is walked page by page with `since` = DATE and a run is created\n"
		"for each record whose id and version were not synced before; the others\n"
		"are counted as already synced. The stored sync position is left alone.\n"
		"Progress goes to stderr after each page; the totals to stdout. The runs\n"
		"wait in the store for `sluice serve` or `sluice worker`.\n\n"
		"Options:\n"
		"  --since DATE           RFC 3339 date-time (or a date, YYYY-MM-DD) to start from (required)\n"
		"  --store URL            postgres://..., sqlite:PATH or env:NAME (default: the project's)\n"
		"  --json                 the totals as JSON\n"
		"  --quiet                no progress lines\n"
		"  -h, --help             this text\n\n"
		"Exit: 0 when the walk completed, 1 when the source failed part-way (what\n"
		"was started stays; run it again), 2 on a usage, project or store error.\n");
}

struct backfill_opts {
	const char *dir, *workflow, *since, *store_url;
	bool json, quiet;
	char since_buf[40];
};

static int parse_args(int argc, char **argv, struct backfill_opts *o)
{
	static const struct option opts[] = {
		{"since", required_argument, NULL, 'S'}, {"store", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},        {"quiet", no_argument, NULL, 'q'},
		{NULL, 0, NULL, 0},
	};
	int c;
	sl_log_set_level(SL_LOG_WARN);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'S': o->since = optarg; break;
		case 's': o->store_url = optarg; break;
		case 'j': o->json = true; break;
		case 'q': o->quiet = true; break;
		default: return cli_usage_error("backfill", "unknown option");
		}
	}
	if (argc - optind != 2)
		return cli_usage_error("backfill", "want DIR WORKFLOW");
	o->dir = argv[optind];
	o->workflow = argv[optind + 1];
	if (!o->since)
		return cli_usage_error("backfill", "--since DATE is required");
	int64_t t;
	if (strlen(o->since) == 10) { /* a date: its start, UTC */
		snprintf(o->since_buf, sizeof o->since_buf, "%sT00:00:00Z", o->since);
		o->since = o->since_buf;
	}
	if (sl_time_parse(o->since, &t))
		return cli_usage_error("backfill", "--since wants an RFC 3339 date-time or YYYY-MM-DD");
	return 0;
}

static void progress(const struct sl_sync_progress *p, void *ud)
{
	const char *wf = ud;
	fprintf(stderr, "sluice backfill %s: page %lld, %lld records: %lld new runs, %lld already synced%s\n", wf,
		(long long)p->pages, (long long)p->records, (long long)p->started, (long long)p->duplicates,
		p->retries ? " (retrying through rate limits)" : "");
}

int cmd_backfill(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_backfill(stdout);
		return EXIT_OK;
	}
	struct backfill_opts o = {0};
	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	struct sl_project *p = cli_load_project(o.dir, true);
	if (!p)
		return EXIT_USAGE;
	int code = EXIT_USAGE;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_store *s = NULL;
	struct sl_engine *e = NULL;
	char *url = cli_store_url(o.store_url, p);
	if (!url || sl_store_open(url, &s, &err) || sl_engine_new(p, s, NULL, &e, &err)) {
		if (url)
			fprintf(stderr, "sluice backfill: %s\n", err.msg);
		goto out;
	}
	struct sl_sync_progress t = {0};
	int rc = sl_engine_backfill(e, o.workflow, o.since, o.quiet ? NULL : progress, (void *)o.workflow, &t, &err);
	if (rc == SL_ENOTFOUND || (rc == SL_EINVAL && t.pages == 0)) {
		fprintf(stderr, "sluice backfill: %s\n", err.msg);
		goto out;
	}
	code = rc ? EXIT_FAIL : EXIT_OK;
	if (rc)
		fprintf(stderr, "sluice backfill: stopped at page %lld: %s\n", (long long)t.pages + 1, err.msg);
	if (o.json) {
		json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "workflow", o.workflow, "since",
				      o.since, "complete", rc == 0, "pages", (json_int_t)t.pages, "records",
				      (json_int_t)t.records, "started", (json_int_t)t.started, "already_synced",
				      (json_int_t)t.duplicates, "deletes", (json_int_t)t.deletes, "skipped",
				      (json_int_t)t.errors);
		char *text = json_dumps(j, JSON_COMPACT);
		printf("%s\n", text);
		free(text);
		json_decref(j);
	} else {
		printf("backfill %s since %s: %lld pages, %lld records, %lld runs started, %lld already synced, "
		       "%lld skipped\n",
		       o.workflow, o.since, (long long)t.pages, (long long)t.records, (long long)t.started,
		       (long long)t.duplicates, (long long)t.errors);
	}
out:
	sl_engine_free(e);
	sl_store_close(s);
	free(url);
	sl_project_free(p);
	return code;
}
