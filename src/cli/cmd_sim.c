/*
 * cmd_sim.c: `sluice sim helpdesk|crm|erp|model` runs one built-in vendor
 * simulator (or the LLM API simulator) in the foreground until SIGINT or
 * SIGTERM.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sim/sim.h"

void help_sim(FILE *out)
{
	fprintf(out,
		"Usage: sluice sim [options] helpdesk|crm|erp|model\n\n"
		"Runs a built-in vendor simulator: a helpdesk (tickets, cursor pages), a\n"
		"CRM (accounts, contacts, notes, page numbers) or an ERP (suppliers,\n"
		"invoices, payments, Link header pages), with its state in memory, until\n"
		"SIGINT or SIGTERM. It prints `sim KIND listening on http://HOST:PORT`.\n"
		"Admin endpoints (no key): GET/POST /_sim/faults, GET /_sim/effects,\n"
		"POST /_sim/reset. Routes: docs/reference/simulators.md.\n\n"
		"`model` is an LLM API instead: OpenAI POST /v1/chat/completions and\n"
		"GET /v1/models, Anthropic POST /v1/messages, plain or streamed, with\n"
		"deterministic answers from --rules (else synthesised from the JSON\n"
		"Schema asked for). It adds GET/DELETE /_sim/calls (what it was sent)\n"
		"and GET/POST /_sim/rules (replace the rules at run time).\n\n"
		"Options:\n"
		"  --port N                 port to listen on (default 0: a free port)\n"
		"  --host ADDR              IPv4 address to bind (default 127.0.0.1)\n"
		"  --api-key KEY|env:NAME   require Authorization: Bearer KEY or X-Api-Key\n"
		"  --rate N                 token-bucket rate per second (default unlimited);\n"
		"                           past it: 429 with Retry-After\n"
		"  --burst N                bucket size (default: the rate, at least 1)\n"
		"  --latency-ms N           delay every request by N ms\n"
		"  --error-rate P           answer 503 with probability P (0..1)\n"
		"  --timeout-rate P         hang past the client's timeout with probability P\n"
		"  --reset-rate P           close the connection unanswered with probability P\n"
		"  --malformed-rate P       answer invalid JSON with probability P\n"
		"  --drift                  rename a field in responses (schema drift)\n"
		"  --seed N                 seed of the fault dice (default 1)\n"
		"  --rules FILE             model: answer rules, JSON or YAML (.yaml/.yml)\n"
		"  --models A,B             model: the model names it knows; others get 404\n"
		"  --log-level LEVEL        debug, info, warn (default), error\n"
		"  -h, --help               this text\n\n"
		"Exit: 0 after SIGINT/SIGTERM, 2 on a usage error or when the port is taken.\n");
}

static int parse_rate(const char *s, double *out)
{
	char *end = NULL;
	double v = strtod(s, &end);
	if (!end || end == s || *end || !(v >= 0 && v <= 1))
		return -1;
	*out = v;
	return 0;
}

/* Parses the options into o; *key_ref is the --api-key value (maybe env:). */
static int parse_args(int argc, char **argv, struct sl_sim_opts *o, const char **key_ref)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},	      {"host", required_argument, NULL, 'H'},
		{"api-key", required_argument, NULL, 'k'},	      {"rate", required_argument, NULL, 'r'},
		{"burst", required_argument, NULL, 'b'},	      {"latency-ms", required_argument, NULL, 'L'},
		{"error-rate", required_argument, NULL, 'e'},     {"timeout-rate", required_argument, NULL, 't'},
		{"reset-rate", required_argument, NULL, 'R'},     {"malformed-rate", required_argument, NULL, 'm'},
		{"drift", no_argument, NULL, 'd'},		      {"seed", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'l'},      {"rules", required_argument, NULL, 'u'},
		{"models", required_argument, NULL, 'M'},	      {NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;
	char *end = NULL;
	sl_log_set_level(SL_LOG_WARN);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (cli_opt_int("sim", "port", optarg, 0, 65535, &v))
				return EXIT_USAGE;
			o->port = (int)v;
			break;
		case 'H': o->host = optarg; break;
		case 'k': *key_ref = optarg; break;
		case 'r':
			o->rate_per_s = strtod(optarg, &end);
			if (!end || end == optarg || *end || !(o->rate_per_s >= 0 && o->rate_per_s <= 1e6))
				return cli_usage_error("sim", "--rate wants a number of requests per second");
			break;
		case 'b':
			if (cli_opt_int("sim", "burst", optarg, 1, 1000000, &v))
				return EXIT_USAGE;
			o->burst = (int)v;
			break;
		case 'L':
			if (cli_opt_int("sim", "latency-ms", optarg, 0, 600000, &v))
				return EXIT_USAGE;
			o->latency_ms = (int)v;
			break;
		case 'e':
			if (parse_rate(optarg, &o->error_rate))
				return cli_usage_error("sim", "--error-rate wants a probability from 0 to 1");
			break;
		case 't':
			if (parse_rate(optarg, &o->timeout_rate))
				return cli_usage_error("sim", "--timeout-rate wants a probability from 0 to 1");
			break;
		case 'R':
			if (parse_rate(optarg, &o->reset_rate))
				return cli_usage_error("sim", "--reset-rate wants a probability from 0 to 1");
			break;
		case 'm':
			if (parse_rate(optarg, &o->malformed_rate))
				return cli_usage_error("sim", "--malformed-rate wants a probability from 0 to 1");
			break;
		case 'd': o->drift = true; break;
		case 's':
			if (sl_parse_i64(optarg, &v) || v < 0)
				return cli_usage_error("sim", "--seed wants a number >= 0");
			o->seed = (uint64_t)v;
			break;
		case 'l':
			if (cli_opt_log_level("sim", optarg))
				return EXIT_USAGE;
			break;
		case 'u': o->rules_file = optarg; break;
		case 'M': o->models = optarg; break;
		default: return cli_usage_error("sim", "unknown option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("sim", "want one of helpdesk, crm, erp, model");
	o->kind = argv[optind];
	bool model = strcmp(o->kind, "model") == 0;
	if (strcmp(o->kind, "helpdesk") && strcmp(o->kind, "crm") && strcmp(o->kind, "erp") && !model)
		return cli_usage_error("sim", "unknown simulator '%s' (helpdesk, crm, erp, model)", o->kind);
	if (!model && (o->rules_file || o->models))
		return cli_usage_error("sim", "--rules and --models are for `sluice sim model`");
	return 0;
}

int cmd_sim(int argc, char **argv)
{
	struct sl_sim_opts o = {.seed = 1};
	const char *key_ref = NULL;
	char *key = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	if (parse_args(argc, argv, &o, &key_ref) != 0)
		return EXIT_USAGE;
	if (key_ref && sl_secret_is_ref(key_ref)) {
		if (sl_secret_resolve(key_ref, ".", &key, &err) != 0) {
			fprintf(stderr, "sluice sim: --api-key: %s\n", err.msg);
			return EXIT_USAGE;
		}
		o.api_key = key;
	} else {
		o.api_key = key_ref;
	}
	/* before the server threads start: only the sigwait below sees them */
	sigset_t sigs;
	cli_block_stop_signals(&sigs);

	struct sl_sim *s = NULL;
	int rc = sl_sim_start(&o, &s, &err);
	free(key); /* the simulator keeps its own copy */
	if (rc != 0) {
		fprintf(stderr, "sluice sim: %s\n", err.msg);
		return EXIT_USAGE;
	}
	printf("sim %s listening on http://%s:%d\n", o.kind, o.host ? o.host : "127.0.0.1", sl_sim_port(s));
	fflush(stdout);
	int sig = 0;
	sigwait(&sigs, &sig);
	sl_sim_stop(s);
	return EXIT_OK;
}
