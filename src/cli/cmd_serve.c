/*
 * cmd_serve.c: `sluice serve DIR` runs the engine and the HTTP edge on the
 * project's store until SIGINT or SIGTERM.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "engine/engine.h"
#include "server/server.h"
#include "sim/sim.h"
#include "store/store.h"


void help_serve(FILE *out)
{
	fprintf(out,
		"Usage: sluice serve [options] DIR\n\n"
		"Loads the project in DIR (secrets resolved), opens its store, starts the\n"
		"workers and serves the run API and the workflows' webhooks over HTTP;\n"
		"workflows with a stream trigger are consumed here too.\n"
		"Prints `sluice: serving DIR on http://HOST:PORT` once listening (with\n"
		"port 0, the port picked). SIGINT or SIGTERM stops gracefully: no new\n"
		"requests, the ones in hand finish, the workers commit and stop.\n\n"
		"Options:\n"
		"  --listen HOST:PORT     default: the project's `listen:`, else 127.0.0.1:8080\n"
		"  --store URL            sqlite:PATH, postgres://... or env:NAME (default: the\n"
		"                         project's `store:`)\n"
		"  --workers N            worker threads (default: the project's, 2)\n"
		"  --max-body BYTES       request body limit (default 1048576): 413 past it\n"
		"  --max-inflight N       requests in hand at once (default 256): 503 past it\n"
		"  --log-level LEVEL      debug, info (default: one line per request), warn, error\n"
		"  --sim KIND[:PORT]      also run a simulator in this process (helpdesk, crm,\n"
		"                         erp, or model: an OpenAI/Anthropic API; up to 4)\n"
		"  --sim-key KEY          the simulators' API key (or env:NAME / file:PATH)\n"
		"  -h, --help             this text\n\n"
		"Exit: 0 after a clean stop, 2 on a usage, project, store or listen error.\n");
}

#define SERVE_SIMS_MAX 4

struct serve_opts {
	const char *dir, *listen, *store_url;
	int workers, max_inflight;
	int64_t max_body;
	const char *sims[SERVE_SIMS_MAX]; /* "helpdesk" or "helpdesk:9101" */
	int nsims;
	const char *sim_key;
};

static int parse_args(int argc, char **argv, struct serve_opts *o)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'L'},    {"store", required_argument, NULL, 's'},
		{"workers", required_argument, NULL, 'w'},   {"max-body", required_argument, NULL, 'b'},
		{"max-inflight", required_argument, NULL, 'm'}, {"log-level", required_argument, NULL, 'l'},
		{"sim", required_argument, NULL, 'S'},       {"sim-key", required_argument, NULL, 'K'},
		{NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;
	sl_log_set_level(SL_LOG_INFO);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'L': o->listen = optarg; break;
		case 's': o->store_url = optarg; break;
		case 'w':
			if (cli_opt_int("serve", "workers", optarg, 1, 64, &v))
				return EXIT_USAGE;
			o->workers = (int)v;
			break;
		case 'b':
			if (cli_opt_int("serve", "max-body", optarg, 1, SL_BUF_MAX_HTTP_BODY, &v))
				return EXIT_USAGE;
			o->max_body = v;
			break;
		case 'm':
			if (cli_opt_int("serve", "max-inflight", optarg, 1, 100000, &v))
				return EXIT_USAGE;
			o->max_inflight = (int)v;
			break;
		case 'l':
			if (cli_opt_log_level("serve", optarg))
				return EXIT_USAGE;
			break;
		case 'S':
			if (o->nsims == SERVE_SIMS_MAX)
				return cli_usage_error("serve", "at most %d --sim", SERVE_SIMS_MAX);
			o->sims[o->nsims++] = optarg;
			break;
		case 'K': o->sim_key = optarg; break;
		default: return cli_usage_error("serve", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("serve", "want DIR");
	o->dir = argv[optind];
	return 0;
}

/* Starts the --sim simulators in this process (the demo's vendors). */
static int start_sims(const struct serve_opts *o, struct sl_sim **sims, struct sl_err *err)
{
	char *key = NULL;
	if (o->sim_key && sl_secret_is_ref(o->sim_key) && sl_secret_resolve(o->sim_key, ".", &key, err))
		return err->code;
	int rc = 0;
	for (int i = 0; i < o->nsims && !rc; i++) {
		char kind[32];
		const char *colon = strchr(o->sims[i], ':');
		int64_t port = 0;
		snprintf(kind, sizeof kind, "%.*s", (int)(colon ? colon - o->sims[i] : (long)strlen(o->sims[i])),
			 o->sims[i]);
		if (colon && (sl_parse_i64(colon + 1, &port) || port < 0 || port > 65535)) {
			rc = sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "--sim %s: bad port", o->sims[i]);
			break;
		}
		struct sl_sim_opts so = {.kind = kind, .port = (int)port, .api_key = key ? key : o->sim_key};
		rc = sl_sim_start(&so, &sims[i], err);
		if (!rc) {
			printf("sluice: sim %s on http://127.0.0.1:%d\n", kind, sl_sim_port(sims[i]));
			fflush(stdout);
		}
	}
	free(key);
	return rc;
}

int cmd_serve(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		help_serve(stdout);
		return EXIT_OK;
	}
	struct serve_opts o = {0};
	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	/* before any thread starts: only the sigwait below sees them */
	sigset_t stop;
	cli_block_stop_signals(&stop);

	struct sl_project *p = cli_load_project(o.dir, true);
	if (!p)
		return EXIT_USAGE;

	int code = EXIT_USAGE;
	struct sl_err err;
	sl_err_clear(&err);
	struct sl_store *s = NULL;
	struct sl_engine *e = NULL;
	struct sl_server *srv = NULL;
	struct sl_sim *sims[SERVE_SIMS_MAX] = {0};
	char *url = cli_store_url(o.store_url, p);
	const char *listen = o.listen ? o.listen : p->settings.listen ? p->settings.listen : "127.0.0.1:8080";
	struct sl_engine_opts eo = {.workers = o.workers, .triggers = true};
	struct sl_server_opts so = {.listen = listen, .max_body = (size_t)o.max_body, .max_inflight = o.max_inflight};
	if (start_sims(&o, sims, &err) || sl_store_open(url, &s, &err) || sl_engine_new(p, s, &eo, &e, &err) ||
	    sl_engine_start(e, &err) ||
	    sl_server_start(e, &so, &srv, &err) || sl_engine_streams_start(e, &err)) {
		fprintf(stderr, "sluice serve: %s\n", err.msg);
		goto out;
	}
	char host[128];
	const char *colon = strrchr(listen, ':');
	snprintf(host, sizeof host, "%.*s", (int)(colon ? colon - listen : 0), listen);
	printf("sluice: serving %s on http://%s:%d\n", o.dir, host, sl_server_port(srv));
	fflush(stdout);
	int sig = 0;
	sigwait(&stop, &sig);
	sl_log(SL_LOG_INFO, "serve", "stopping", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
	code = EXIT_OK;
out:
	sl_server_stop(srv); /* first: no new work, requests in hand finish */
	if (e) {
		sl_engine_stop(e);
		sl_engine_free(e);
	}
	sl_store_close(s);
	for (int i = 0; i < SERVE_SIMS_MAX; i++)
		if (sims[i])
			sl_sim_stop(sims[i]);
	free(url);
	sl_project_free(p);
	return code;
}
