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
#define SL_CONF_PTR_MAX 512

/* out = base + "/" + key, with key escaped (RFC 6901: ~ -> ~0, / -> ~1). */
void sl_conn__ptr(char out[SL_CONF_PTR_MAX], const char *base, const char *key);

/* Typed getters for keys already checked by sl_conf_check_keys: they return
 * the default when the key is absent (the type was checked before). */
const char *sl_conn__str(const json_t *obj, const char *key, const char *def);
bool sl_conn__bool(const json_t *obj, const char *key, bool def);
/* A duration (string "10s" or integer ms). Reports a zero or negative
 * value at pointer/key and returns def then; a value of the wrong type
 * (reported by the key check) also yields def. */
int64_t sl_conn__duration(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
			  const char *key, int64_t def);

/* Resolves the secret reference at obj[key] (ctx->resolve_secrets) or only
 * checks that it is a reference. A plain value is rejected: secrets are never
 * written in project files. Returns 0 with *out owned (NULL when not resolved
 * or absent), or -1 after reporting at pointer/key. A value of the wrong
 * type was reported by the key check: -1, silently. */
int sl_conn__secret(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
		    const char *key, bool required, char **out);

/* Frees a string that held a secret, wiping it first. NULL-safe. */
void sl_conn__secret_free(char *s);

/* Replaces every occurrence of each secret (NULL-terminated list, entries may
 * be NULL or short) in msg with "***", in place. A defence in depth: a peer
 * that echoes a credential back in an error body must not put it in the
 * run's error, the logs or the DLQ. Secrets shorter than 4 bytes are left
 * alone (they would mangle ordinary words). */
void sl_conn__redact(char *msg, size_t cap, const char *const *secrets, size_t nsecrets);

/* Maps an errno from file I/O to an error class: a full disk or an I/O error
 * may clear up (transient); permission and path problems do not. */
enum sl_class sl_conn__errno_class(int e);

#endif
