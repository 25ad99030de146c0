/*
 * server: the HTTP edge (DESIGN.md §9): the run API, durable webhooks,
 * health checks and the OpenAPI document, on libmicrohttpd with an internal
 * epoll thread pool.
 *
 * Promises: a start (API or webhook) is answered 2xx only after the engine
 * has committed the run; every error is application/problem+json (RFC 9457);
 * a request body over max_body is refused with 413; past max_inflight
 * requests in hand, a new one is answered 503 with Retry-After at once
 * (nothing queues without bound); one JSON log line per request on stderr.
 * Webhook secrets are resolved once at start and never logged.
 */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <stddef.h>

#include "engine/engine.h"
#include "util/util.h"

struct sl_server;

struct sl_server_opts {
	const char *listen;  /* "127.0.0.1:8080" (NULL: that); port 0 picks a free one */
	size_t max_body;     /* bytes; 0: 1 MiB */
	int max_inflight;    /* requests in hand at once; 0: 256 */
	int conn_timeout_s;  /* idle/slow sender timeout; 0: 30 */
	int threads;         /* thread pool size; 0: 16 (a thread waits out its accept's commit) */
};

/* Starts serving. Borrows e (and its project and store): they must outlive
 * the server. Resolves every webhook's hmac_secret reference (and the
 * rotation secret, env NAME_PREVIOUS for a ref env:NAME) now; a reference
 * that does not resolve fails the start. Returns an owned server. */
int sl_server_start(struct sl_engine *e, const struct sl_server_opts *o, struct sl_server **out,
		    struct sl_err *err);
/* The port actually bound (useful with port 0). */
int sl_server_port(const struct sl_server *s);
/* Stops accepting, lets the requests in hand finish, frees s. NULL-safe. */
void sl_server_stop(struct sl_server *s);

/* The routes the router knows, as OpenAPI path templates ("/v1/runs/{id}");
 * a static table (borrowed), *n set to its length. */
struct sl_server_route {
	const char *method; /* "GET", "POST" */
	const char *path;
};
const struct sl_server_route *sl_server_routes(size_t *n);
/* The OpenAPI 3.1 document describing every route (static, borrowed). */
const char *sl_server_openapi(void);

#endif
