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

/* A JSON pointer is short (a few key names); longer ones are cut, which only
 * costs precision in a message. */
/* Maps an errno from file I/O to an error class: a full disk or an I/O error
 * may clear up (transient); permission and path problems do not. */
enum sl_class sl_conn__errno_class(int e);

#endif
