/*
 * main.c: `sluice VERB ...` dispatch, help and version.
 */
#include <jansson.h>
#include <jq.h>
#include <pthread.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "util/util.h"

static const struct cli_verb verbs[] = {
	{"check", "validate a project folder; list every error as FILE:LINE:COL", cmd_check, help_check},
	{"validate", "validate a JSON document against a JSON Schema contract", cmd_validate, help_validate},
	{"run", "run a workflow to the end on the local store and print each step", cmd_run, help_run},
	{"serve", "run the engine and the HTTP API / webhooks", cmd_serve, help_serve},
	{"worker", "run the engine's workers on the project's store (no HTTP)", cmd_worker, help_worker},
	{"backfill", "replay a polling sync's history from a date, without doubling what is synced", cmd_backfill,
	 help_backfill},
	{"runs", "list, show and cancel runs on a server", cmd_runs, help_runs},
	{"dlq", "list and replay dead runs on a server", cmd_dlq, help_dlq},
	{"connectors", "connector health (state, last success, last error) on a server", cmd_connectors,
	 help_connectors},
	{"slo", "workflows' service level objectives: state, burn rates, budget left, on a server", cmd_slo, help_slo},
	{"costs", "what model calls cost, by workflow, route, model or tenant, on a server", cmd_costs, help_costs},
	{"sim", "run a vendor (helpdesk, crm, erp) or model API simulator with fault injection", cmd_sim, help_sim},
	{"model", "models: list and try routes, train and measure the local models", cmd_model, help_model},
	{"approvals", "list, show and decide approvals; export decisions for training, on a server", cmd_approvals,
	 help_approvals},
	{"audit", "verify the hash-chained audit log, print its head, list entries", cmd_audit, help_audit},
	{"keys", "create, list and revoke API keys (on the store: the first needs none)", cmd_keys, help_keys},
	{"pause", "kill switch: hold a workflow, connector or provider on a server", cmd_pause, help_pause},
	{"resume", "lift a kill switch: held runs go on where they stopped", cmd_resume, help_resume},
	{"version", "print the version and the libraries Sluice was built with", cmd_version, help_version},
};

static void usage(FILE *out)
{
	fprintf(out, "sluice %s: a governed AI integration engine\n\n"
		     "Usage: sluice VERB [options] [args]\n\nVerbs:\n",
		SL_VERSION);
	for (size_t i = 0; i < SL_ARRAY_LEN(verbs); i++)
		fprintf(out, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(out, "\n`sluice VERB --help` describes a verb. Docs: docs/ in the source tree.\n");
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

int cli_usage_error(const char *verb, const char *fmt, ...)
{
	fprintf(stderr, "sluice %s: ", verb);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see `sluice %s --help`)\n", verb);
	return EXIT_USAGE;
}

int cli_opt_int(const char *verb, const char *name, const char *arg, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t v;
	if (sl_parse_i64(arg, &v) || v < lo || v > hi)
		return cli_usage_error(verb, "--%s wants a number from %lld to %lld", name, (long long)lo,
				       (long long)hi);
	*out = v;
	return 0;
}

int cli_opt_log_level(const char *verb, const char *arg)
{
	int lvl = sl_log_parse_level(arg);
	if (lvl < 0)
		return cli_usage_error(verb, "unknown log level '%s' (want debug, info, warn, error or off)", arg);
	sl_log_set_level((enum sl_log_level)lvl);
	return 0;
}

struct sl_project *cli_load_project(const char *dir, bool resolve_secrets)
{
	struct sl_project *p = NULL;
	struct sl_diags diags = {0};
	struct sl_load_opts lo = {.resolve_secrets = resolve_secrets};
	if (sl_project_load(dir, &lo, &p, &diags)) {
		sl_diags_sort(&diags);
		sl_diags_print(stderr, &diags, ".", cli_isatty(stderr));
	}
	sl_diags_free(&diags);
	return p;
}

void cli_block_stop_signals(sigset_t *set)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

char *cli_store_url(const char *override, const struct sl_project *p)
{
	const char *u = override ? override : p->settings.store;
	if (sl_secret_is_ref(u)) {
		char *v = NULL;
		struct sl_err err;
		sl_err_clear(&err);
		if (sl_secret_resolve(u, override ? "." : p->dir, &v, &err)) {
			fprintf(stderr, "sluice: store: %s\n", err.msg);
			return NULL;
		}
		return v;
	}
	if (override)
		return sl_strdup(override);
	if (sl_str_startswith(u, "sqlite:") && u[7] != '/' && strcmp(u + 7, ":memory:") != 0) {
		char *path = sl_path_join(p->dir, u + 7);
		char *r = sl_asprintf("sqlite:%s", path);
		free(path);
		return r;
	}
	return sl_strdup(u);
}

struct sl_audit_actor cli_actor(void)
{
	const char *user = getenv("USER");
	if (!user || !*user) {
		const struct passwd *pw = getpwuid(getuid());
		user = pw && pw->pw_name && *pw->pw_name ? pw->pw_name : "unknown";
	}
	return (struct sl_audit_actor){SL_ACTOR_USER, user};
}

bool cli_isatty(FILE *f)
{
	return isatty(fileno(f));
}

void help_version(FILE *out)
{
	fprintf(out, "Usage: sluice version\n\nPrints Sluice's version and the versions of the libraries it uses.\n");
}

int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("sluice %s\n", SL_VERSION);
	printf("  sqlite %s, jansson %s, jq %s\n", sqlite3_libversion(), jansson_version_str(), "1.6");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
		if (argc > 2)
			for (size_t i = 0; i < SL_ARRAY_LEN(verbs); i++)
				if (strcmp(argv[2], verbs[i].name) == 0) {
					verbs[i].help_fn(stdout);
					return EXIT_OK;
				}
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(verb, "--version") == 0 || strcmp(verb, "-V") == 0)
		return cmd_version(argc - 1, argv + 1);
	for (size_t i = 0; i < SL_ARRAY_LEN(verbs); i++) {
		if (strcmp(verb, verbs[i].name) != 0)
			continue;
		if (cli_wants_help(argc - 1, argv + 1)) {
			verbs[i].help_fn(stdout);
			return EXIT_OK;
		}
		return verbs[i].main_fn(argc - 1, argv + 1);
	}
	const char *names[SL_ARRAY_LEN(verbs) + 1];
	for (size_t i = 0; i < SL_ARRAY_LEN(verbs); i++)
		names[i] = verbs[i].name;
	names[SL_ARRAY_LEN(verbs)] = NULL;
	const char *hint = sl_did_you_mean(verb, names);
	fprintf(stderr, "sluice: unknown verb '%s'%s%s%s\n", verb, hint ? " (did you mean '" : "", hint ? hint : "",
		hint ? "'?)" : "");
	usage(stderr);
	return EXIT_USAGE;
}
