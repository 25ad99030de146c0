/*
 * sim: built-in vendor simulators (helpdesk, CRM, ERP) for tests and the
 * demo. Each simulator is an HTTP server on its own port with its state in
 * memory: REST resources, API-key auth, a token-bucket rate limit,
 * Idempotency-Key replays, and fault injection (latency, 5xx, hangs,
 * connection resets, malformed JSON, schema drift) set at start or at run
 * time through `POST /_sim/faults`. `GET /_sim/effects` counts the writes it
 * applied, so a test can prove "exactly once". Several simulators may run in
 * one process. Routes: docs/reference/simulators.md.
 *
 * The "model" kind simulates an LLM API instead: OpenAI chat completions
 * and Anthropic Messages (plain and streamed), answering from a rules file
 * or, without a rule, with a deterministic answer (a document synthesised
 * from the requested JSON Schema). `GET /_sim/calls` shows what the model
 * was sent, so a test can prove a masked value never left.
 */
#ifndef SL_SIM_H
#define SL_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct sl_sim;

struct sl_sim_opts {
	const char *kind;      /* "helpdesk" | "crm" | "erp" | "model" (borrowed) */
	const char *host;      /* IPv4 address to bind; NULL = 127.0.0.1 */
	int port;              /* 0 = a free port (see sl_sim_port) */
	const char *api_key;   /* required key, NULL = no auth (copied) */
	double rate_per_s;     /* token bucket refill; 0 = unlimited */
	int burst;             /* bucket size; 0 = max(1, rate_per_s) */
	int latency_ms;        /* added to every vendor request */
	double error_rate;     /* probability of a 503 */
	double timeout_rate;   /* probability of hanging past the client's timeout */
	double reset_rate;     /* probability of closing the connection unanswered */
	double malformed_rate; /* probability of a 200 with an invalid JSON body */
	bool drift;            /* schema drift: one field renamed in responses */
	uint64_t seed;         /* fault dice; the same seed gives the same faults */
	/* kind "model" only (both borrowed, read at start): */
	const char *rules_file; /* answer rules, JSON or YAML; NULL = none */
	const char *models;     /* "a,b": the known models (others 404); NULL = any */
};

/* Starts a simulator; on success *out is owned by the caller (free with
 * sl_sim_stop). Borrows o (strings are copied). Errors: SL_EINVAL for a
 * bad option or rules file, SL_EIO when the port cannot be bound. */
int sl_sim_start(const struct sl_sim_opts *o, struct sl_sim **out, struct sl_err *err);
/* The bound port (useful after port 0). */
int sl_sim_port(const struct sl_sim *s);
/* Stops the server (waking requests that hang or wait), frees everything.
 * NULL is a no-op. */
void sl_sim_stop(struct sl_sim *s);

#endif
