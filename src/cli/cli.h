/* cli.h: private to src/cli/: one function per verb. */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "gov/audit.h"

#define SL_VERSION "0.1.0"

/* Exit codes: 0 ok, 1 the thing checked/run failed, 2 usage or set-up error. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli_verb {
	const char *name;
	const char *summary;
	int (*main_fn)(int argc, char **argv);
	void (*help_fn)(FILE *out);
};

int cmd_check(int argc, char **argv);
void help_check(FILE *out);
int cmd_validate(int argc, char **argv);
void help_validate(FILE *out);
int cmd_run(int argc, char **argv);
void help_run(FILE *out);
int cmd_serve(int argc, char **argv);
void help_serve(FILE *out);
int cmd_worker(int argc, char **argv);
void help_worker(FILE *out);
int cmd_backfill(int argc, char **argv);
void help_backfill(FILE *out);
int cmd_runs(int argc, char **argv);
void help_runs(FILE *out);
int cmd_dlq(int argc, char **argv);
void help_dlq(FILE *out);
int cmd_connectors(int argc, char **argv);
void help_connectors(FILE *out);
int cmd_slo(int argc, char **argv);
void help_slo(FILE *out);
int cmd_costs(int argc, char **argv);
void help_costs(FILE *out);
int cmd_sim(int argc, char **argv);
void help_sim(FILE *out);
int cmd_model(int argc, char **argv);
void help_model(FILE *out);
/* cmd_model_routes.c: the route subcommands of `sluice model` */
int model_list_main(int argc, char **argv);
void help_model_list(FILE *out);
int model_test_main(int argc, char **argv);
void help_model_test(FILE *out);
int model_eval_main(int argc, char **argv);
void help_model_eval(FILE *out);
int cmd_audit(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
void help_approvals(FILE *out);
void help_audit(FILE *out);
int cmd_keys(int argc, char **argv);
void help_keys(FILE *out);
int cmd_pause(int argc, char **argv);
void help_pause(FILE *out);
int cmd_resume(int argc, char **argv);
void help_resume(FILE *out);
int cmd_version(int argc, char **argv);
void help_version(FILE *out);

/* True when argv holds -h or --help before a "--". */
bool cli_wants_help(int argc, char **argv);
/* Prints "sluice VERB: message" on stderr and returns EXIT_USAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An integer option in [lo, hi], parsed strictly. A bad value prints
 * "sluice VERB: --NAME wants a number from LO to HI" and returns EXIT_USAGE. */
int cli_opt_int(const char *verb, const char *name, const char *arg, int64_t lo, int64_t hi, int64_t *out);
/* --log-level LEVEL: sets the level, or a usage error naming the levels. */
int cli_opt_log_level(const char *verb, const char *arg);

struct sl_project;
/* Loads and checks DIR (secrets resolved when asked), printing every
 * problem as FILE:LINE:COL on stderr. NULL when there was any. */
struct sl_project *cli_load_project(const char *dir, bool resolve_secrets);
/* Blocks SIGINT and SIGTERM in the calling thread (and so in every thread
 * it starts after), filling set, so only a sigwait(set) sees them; and
 * ignores SIGPIPE. For the long-running verbs (serve, worker). */
#include <signal.h>
void cli_block_stop_signals(sigset_t *set);
/* The store URL a verb opens: override (--store) when given, else the
 * project's `store:`, a relative sqlite path taken from the project folder.
 * Either may be env:NAME or file:PATH (a URL holding a password): it is
 * resolved here and never printed. Returns owned, or NULL after printing
 * why on stderr. */
char *cli_store_url(const char *override, const struct sl_project *p);

/* The person running the CLI, for the audit log: a user named by $USER
 * (or "unknown"). */
struct sl_audit_actor cli_actor(void);

/* ---- clients of a server's API (cmd_runs.c) ------------------------------------ */
#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"
struct sl_buf;
/* Calls server's API (SLUICE_TOKEN as a Bearer token when set); *out gets
 * the parsed answer (owned, may be NULL), *status the HTTP status. Returns
 * 0, or -1 after printing a connection error as "sluice VERB: ...". */
int cli_api_call(const char *verb, const char *server, const char *method, const char *path, const char *body,
		 long *status, json_t **out);
/* Prints a problem+json answer on stderr; returns EXIT_FAIL. */
int cli_print_problem(const char *verb, long status, const json_t *doc);
/* Appends ?name=value or &name=value, URL-escaped, when value is set. */
void cli_add_query(struct sl_buf *q, const char *name, const char *value);
/* Appends segment, URL-escaped, to a path. */
void cli_add_path_segment(struct sl_buf *b, const char *segment);

/* Whether stdout/stderr is a terminal (tables and colour for people). */
bool cli_isatty(FILE *f);

#endif
