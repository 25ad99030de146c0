/*
 * connector_priv.h: what the connector types (http.c, file.c) share with the
 * generic layer (connector.c). Private to src/connector/.
 */
#ifndef SL_CONNECTOR_PRIV_H
#define SL_CONNECTOR_PRIV_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "connector/connector.h"

/* The built-in types, listed in connector.c's static registry. */
extern const struct sl_connector_type sl_conn__http_type;
extern const struct sl_connector_type sl_conn__file_type;
extern const struct sl_connector_type sl_conn__redis_stream_type;
extern const struct sl_connector_type sl_conn__nats_type;
extern const struct sl_connector_type sl_conn__kafka_type;

/* Stream connectors share these: the identity prefix and the run of a
 * `publish` call (stream.c). */
#define SL_STREAM_PUBLISH_ACTION "publish"
/* The bytes published for a call of `publish`: the input as compact JSON,
 * owned. */
char *sl_conn__publish_body(const struct sl_call *call, size_t *len);
/* Splits a URL "scheme://[user[:password]@]host[:port][/path]" (no
 * secrets are printed from it). Fields owned, NULL when absent. */
struct sl_conn_url {
	char *scheme, *user, *password, *host, *path;
	int port;
};
int sl_conn__url_parse(const char *url, struct sl_conn_url *out);
void sl_conn__url_free(struct sl_conn_url *u);

/* A JSON pointer is short (a few key names); longer ones are cut, which only
 * costs precision in a message. */
/* Maps an errno from file I/O to an error class: a full disk or an I/O error
 * may clear up (transient); permission and path problems do not. */
enum sl_class sl_conn__errno_class(int e);

#endif
