/* sim_int.h: private to src/sim/: what the HTTP core (sim.c) shares with
 * the vendor models (vendors.c) and the LLM API model (model.c). */
#ifndef SL_SIM_INT_H
#define SL_SIM_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "sim/sim.h"

#define SIM_BODY_MAX (1024 * 1024) /* larger requests get 413 */
#define SIM_COLLS_MAX 4            /* collections per vendor */
#define SIM_ITEMS_MAX 100000       /* records per collection; past it 507 */
#define SIM_KEYS_MAX 100000        /* idempotency keys remembered */
#define SIM_HOST_MAX 64
#define SIM_HEADER_MAX 512
#define SIM_PER_PAGE_MAX 100

enum sim_kind { SIM_HELPDESK, SIM_CRM, SIM_ERP, SIM_MODEL };
#define SIM_KINDS (SIM_MODEL + 1)

struct sim_model; /* model.c's state */

/* A named array of records ("tickets", each {"id": "tkt_1", ...}). */
struct sim_coll {
	const char *name;
	const char *prefix; /* id prefix, "tkt" */
	json_t *items;      /* array, in creation order */
	unsigned next_id;
};

/* What a handler answers. body is owned; route names the route pattern
 * for /_sim/effects ("POST /tickets/{id}/tags"). */
struct sim_resp {
	unsigned status;
	json_t *body;
	bool problem;  /* body is application/problem+json */
	bool effect;   /* a write was applied */
	char route[96];
	char link[SIM_HEADER_MAX]; /* Link header, "" when none */
	char allow[64];            /* Allow header with 405 */
	char *text;                /* owned raw body sent instead of body (an SSE stream) */
	const char *ctype;         /* Content-Type when not the JSON default (static) */
	int retry_after;           /* > 0: send Retry-After */
	int delay_ms;              /* > 0: wait this long, unlocked, before answering */
};

struct sim_faults {
	int latency_ms;
	double error_rate, timeout_rate, reset_rate, malformed_rate;
	bool drift;
	int storm_429; /* the next N requests answer 429 with Retry-After: 1 (a rate-limit storm) */
};

struct sl_sim {
	enum sim_kind kind;
	const char *kind_name;
	const struct sim_ops *ops;
	char host[SIM_HOST_MAX];
	int port;
	char *api_key; /* owned, NULL when none */
	double rate_per_s;
	int burst;
	uint64_t seed;
	struct sim_faults start_faults; /* what /_sim/reset returns to */
	struct MHD_Daemon *daemon;
	atomic_bool stopping;

	pthread_mutex_t mu; /* guards everything below */
	struct sim_faults faults;
	uint64_t rng;
	double tokens;
	int64_t tokens_at_ms;
	struct sim_coll colls[SIM_COLLS_MAX];
	size_t ncolls;
	unsigned next_comment;
	json_t *keys; /* Idempotency-Key -> {"status", "body", "ctype", "link"} */
	uint64_t effects, replays, rej_401, rej_429, rej_5xx;
	json_t *by_route; /* "POST /tickets" -> count */
	struct sim_model *model; /* kind "model": rules, calls (model.c) */
};

/* A parsed request as the vendor models see it. */
struct sim_req {
	struct MHD_Connection *con;
	const char *method;
	const char *url;
	const char *seg[4]; /* path segments, NULL-terminated; point into path */
	size_t nseg;
	json_t *body; /* parsed JSON body, NULL when none */
};

/* What a kind of simulator plugs into the HTTP core (sim.c), in the
 * manner of a plugin table: one const entry per kind. Callbacks run with
 * s->mu held unless said otherwise. init_fn, free_fn, handle_fn and
 * malformed are required; another NULL slot means the default. */
struct sim_ops {
	/* Once at start, before init_fn: reads the kind's own options. */
	int (*setup_fn)(struct sl_sim *s, const struct sl_sim_opts *o, struct sl_err *err);
	int (*init_fn)(struct sl_sim *s);      /* fresh state; again on /_sim/reset after free_fn */
	void (*free_fn)(struct sl_sim *s);     /* frees what init_fn made */
	void (*teardown_fn)(struct sl_sim *s); /* frees what setup_fn made */
	void (*handle_fn)(struct sl_sim *s, const struct sim_req *rq, struct sim_resp *rp);
	/* Error bodies in the kind's own wire shape (default: problem+json).
	 * Needs no lock: it reads only the url. */
	void (*error_fn)(const char *url, unsigned status, const char *detail, struct sim_resp *rp);
	/* Admin endpoints of its own; false when `what` is not one. */
	bool (*admin_fn)(struct sl_sim *s, const char *method, const char *what, json_t *body, struct sim_resp *rp);
	/* A request the core refused before handle_fn (401, 429, faults, a bad
	 * body); status 0 = dropped unanswered. */
	void (*reject_fn)(struct sl_sim *s, const char *url, const struct sl_buf *body, unsigned status);
	const char *malformed; /* body of the malformed-JSON fault */
	bool idempotency;      /* honours Idempotency-Key */
	bool drift;            /* has a field to rename under --drift */
};

/* model.c */
extern const struct sim_ops sim_model_ops;

/* vendors.c; all called with s->mu held. */
int sim_vendor_init(struct sl_sim *s);   /* collections + seed data */
void sim_vendor_free(struct sl_sim *s);
void sim_vendor_handle(struct sl_sim *s, const struct sim_req *rq, struct sim_resp *rp);
const char *sim_drift_from(const struct sl_sim *s); /* field drift renames */
const char *sim_drift_to(const struct sl_sim *s);

/* sim.c helpers the models use. */
void sim_problem(struct sim_resp *rp, unsigned status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *sim_query(const struct sim_req *rq, const char *name);

#endif
