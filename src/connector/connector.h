/*
 * connector: the systems Sluice talks to.
 *
 * A connector type is a const table of callbacks (Fluent Bit's output
 * plugins, SQLite's io_methods), kept in a static registry looked up by
 * name. A connector is one configured instance (connectors/NAME.yaml), with
 * named actions, each declaring its effect (read / write / delete).
 *
 * Config arrives as JSON (the YAML file converted by the config module);
 * a type validates its own keys and reports problems through struct
 * sl_conf_ctx with a JSON pointer, which the loader turns into FILE:LINE:COL.
 *
 * Thread safety: after init, sl_connector_call may run on many threads at
 * once for the same connector; a type keeps its own locking.
 */
#ifndef SL_CONNECTOR_H
#define SL_CONNECTOR_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "expr/expr.h"
#include "util/util.h"

enum sl_effect { SL_EFFECT_READ, SL_EFFECT_WRITE, SL_EFFECT_DELETE };
const char *sl_effect_name(enum sl_effect e);
int sl_effect_parse(const char *name); /* -1 when unknown */

/* How a type reports config problems and finds positions (implemented by the
 * config loader). pointer is a JSON pointer into the connector document,
 * e.g. "/actions/tickets.create/method". */
struct sl_conf_ctx {
	const char *file;        /* the connector file, for messages */
	const char *project_dir; /* resolves relative paths and file: secrets */
	bool resolve_secrets;    /* false under `sluice check` (no secrets needed) */
	void (*report_fn)(struct sl_conf_ctx *ctx, const char *pointer, const char *msg);
	void (*locate_fn)(struct sl_conf_ctx *ctx, const char *pointer, int *line, int *col);
	void *ud;
	int nerrors; /* incremented by sl_conf_error */
};
void sl_conf_error(struct sl_conf_ctx *ctx, const char *pointer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* An sl_expr_origin for the value at pointer (file/line/col filled in). */
void sl_conf_origin(struct sl_conf_ctx *ctx, const char *pointer, const char *what,
		    struct sl_expr_origin *out, int *line, int *col);

/* A key of a config block: declared once (STYLE.md habit 8). */
enum sl_conf_type { SL_CONF_STRING, SL_CONF_INT, SL_CONF_BOOL, SL_CONF_OBJECT, SL_CONF_ARRAY,
		    SL_CONF_ANY, SL_CONF_DURATION /* "30s" or ms */, SL_CONF_JQ /* jq source */ };
struct sl_conf_key {
	const char *name;
	enum sl_conf_type type;
	bool required;
	const char *description; /* for docs and --help */
};
/* Checks obj's keys against keys (NULL-name terminated): unknown keys (with
 * "did you mean"), missing required keys, wrong types. pointer is obj's own
 * pointer. Returns the number of problems reported. */
int sl_conf_check_keys(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
		       const struct sl_conf_key *keys);

/* ---- helpers for config blocks (connectors, models.yaml, ...) ---- */
#define SL_CONF_PTR_MAX 512

/* out = base + "/" + key, with key escaped (RFC 6901: ~ -> ~0, / -> ~1). */
void sl_conf_ptr(char out[SL_CONF_PTR_MAX], const char *base, const char *key);

/* Typed getters for keys already checked by sl_conf_check_keys: they return
 * the default when the key is absent (the type was checked before). */
const char *sl_conf_str(const json_t *obj, const char *key, const char *def);
bool sl_conf_bool(const json_t *obj, const char *key, bool def);
/* A duration (string "10s" or integer ms). Reports a zero or negative
 * value at pointer/key and returns def then; a value of the wrong type
 * (reported by the key check) also yields def. */
int64_t sl_conf_duration(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
			  const char *key, int64_t def);

/* Resolves the secret reference at obj[key] (ctx->resolve_secrets) or only
 * checks that it is a reference. A plain value is rejected: secrets are never
 * written in project files. Returns 0 with *out owned (NULL when not resolved
 * or absent), or -1 after reporting at pointer/key. A value of the wrong
 * type was reported by the key check: -1, silently. */
int sl_conf_secret(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
		    const char *key, bool required, char **out);

/* Frees a string that held a secret, wiping it first. NULL-safe. */
void sl_secret_free(char *s);

/* Replaces every occurrence of each secret (NULL-terminated list, entries may
 * be NULL or short) in msg with "***", in place. A defence in depth: a peer
 * that echoes a credential back in an error body must not put it in the
 * run's error, the logs or the DLQ. Secrets shorter than 4 bytes are left
 * alone (they would mangle ordinary words). */
void sl_redact_secrets(char *msg, size_t cap, const char *const *secrets, size_t nsecrets);

/* ---- outbound destinations (outbound.c) ---- */

/* What an IP address is, for outbound safety (DESIGN.md §7). An IPv4
 * address inside IPv6 (::ffff:a.b.c.d, ::a.b.c.d, 64:ff9b::/96,
 * 64:ff9b:1::/48, 2002::/16) is classed as the IPv4 address. */
enum sl_addr_class {
	SL_ADDR_PUBLIC,       /* anything else: allowed */
	SL_ADDR_LOOPBACK,     /* 127.0.0.0/8, ::1 */
	SL_ADDR_PRIVATE,      /* 10/8, 172.16/12, 192.168/16, fec0::/10 */
	SL_ADDR_SHARED,       /* 100.64.0.0/10, carrier-grade NAT */
	SL_ADDR_UNIQUE_LOCAL, /* fc00::/7 */
	SL_ADDR_LINK_LOCAL,   /* 169.254.0.0/16, fe80::/10 */
	SL_ADDR_METADATA,     /* 169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254 */
	SL_ADDR_UNSPECIFIED,  /* 0.0.0.0/8, :: (Linux connects them to this host) */
	SL_ADDR_MULTICAST,    /* 224.0.0.0/4, 255.255.255.255, ff00::/8 */
	SL_ADDR_RESERVED,     /* 240.0.0.0/4, 192.0.0.0/24, IPv4-compatible ::a.b.c.d */
};
/* family is AF_INET or AF_INET6, addr the 4 or 16 bytes of the address. */
enum sl_addr_class sl_addr_classify(int family, const void *addr);
/* "a loopback address", ... (static). */
const char *sl_addr_class_name(enum sl_addr_class c);

/* Whether an outbound destination is link-local or a cloud metadata
 * endpoint (the two classes above, also inside IPv6): what model providers
 * refuse unless a config allows it. */
bool sl_addr_forbidden(int family, const void *addr);

/* Whether host names a metadata service (metadata.google.internal,
 * metadata.goog, metadata, instance-data...), any case, trailing dot or not. */
bool sl_host_is_metadata(const char *host);

/* A connector's `allow_hosts`: host names ("helpdesk.internal", matched
 * exactly, any case), suffixes ("*.corp.example", subdomains only), IP
 * addresses and CIDRs (v4 and v6). */
struct sl_allow_entry;
struct sl_allow_list {
	struct sl_allow_entry *v; /* owned */
	size_t n;
};
/* Parses arr (a JSON list, or NULL: empty) into out, reporting each bad
 * entry at pointer/INDEX. A value that is not a list yields an empty list
 * silently (the key check reported it). Returns the number of problems;
 * out is usable (and must be freed) either way. */
int sl_allow_list_parse(struct sl_conf_ctx *ctx, const json_t *arr, const char *pointer, struct sl_allow_list *out);
void sl_allow_list_free(struct sl_allow_list *l);
/* Whether host is listed by name (exact_only: a *.suffix entry does not count). */
bool sl_allow_list_has_name(const struct sl_allow_list *l, const char *host, bool exact_only);
/* Whether the address is inside a listed IP or CIDR (a v4 entry also
 * covers the IPv4-mapped IPv6 form). */
bool sl_allow_list_has_addr(const struct sl_allow_list *l, int family, const void *addr);

/* The verdict on connecting to addr for a URL whose host is host (may be
 * NULL): SL_ADDR_PUBLIC when allowed, else the class that refuses it.
 * Allowed: a public address; a link-local or metadata address under
 * allow_link_local; an address inside an allow list IP/CIDR; any address
 * but a metadata one when host is listed by name. */
enum sl_addr_class sl_outbound_check(const struct sl_allow_list *allow, bool allow_link_local, const char *host,
				     int family, const void *addr);
/* Whether host is a metadata name that must be refused before it is even
 * resolved (not listed exactly by name, no allow_link_local). */
bool sl_outbound_name_refused(const struct sl_allow_list *allow, bool allow_link_local, const char *host);

struct sl_connector;
struct sl_stream_ops;

struct sl_action {
	char *name;            /* "tickets.create" */
	enum sl_effect effect;
	json_t *config;        /* the action's block (owned ref), may be an empty object */
	void *priv;            /* the type's compiled form of the action */
	int line, col;         /* where it is declared */
};

/* One call of an action. All borrowed for the duration of the call. */
struct sl_call {
	const json_t *input;          /* the step's `with` value (json null if none) */
	const char *idempotency_key;  /* stable across retries and restarts; may be NULL */
	const char *correlation_id;   /* may be NULL */
	const char *run_id, *step_id; /* for logs; may be NULL */
	int64_t timeout_ms;           /* 0: the connector's default */
	const char *content_type;     /* of a body; NULL: application/json (an action's headers win) */
};

struct sl_call_result {
	json_t *output;  /* owned by the caller after a successful call; never NULL then */
	int status;      /* protocol status (HTTP) or 0 */
};

/* A poll source's batch (file rows after a cursor). */
struct sl_poll_result {
	json_t *records; /* array, owned by the caller */
	char *cursor;    /* the cursor after these records, owned by the caller */
};

struct sl_connector_type {
	const char *name;                 /* "http", "file" */
	const char *description;
	const struct sl_conf_key *keys;   /* top-level keys besides connector/type/actions */
	const struct sl_conf_key *action_keys; /* keys of one action block */
	/* Actions every instance has even when not declared (file: append, read);
	 * NULL-terminated pairs {name, effect name}; may be NULL. */
	const char *const *builtin_actions;
	/* Validates config and compiles it into c->priv; reports through ctx.
	 * Must not do network I/O. Returns 0 or the number of problems. */
	int (*init_fn)(struct sl_connector *c, struct sl_conf_ctx *ctx);
	/* Compiles one action into a->priv (called after init_fn for each action). */
	int (*action_init_fn)(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
			      const char *pointer);
	/* Performs a call. On failure sets err (class, http_status,
	 * retry_after_ms) and returns a negative code. */
	int (*call_fn)(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		       struct sl_call_result *res, struct sl_err *err);
	/* Reads what is new after cursor (NULL: from the start); NULL slot: the
	 * type cannot be polled. */
	int (*poll_fn)(struct sl_connector *c, const struct sl_action *a, const char *cursor, size_t max,
		       struct sl_poll_result *res, struct sl_err *err);
	void (*action_free_fn)(struct sl_action *a);
	void (*close_fn)(struct sl_connector *c);
	/* Event streams (redis_stream, nats, kafka); NULL for other types. A
	 * stream type also has the built-in action `publish` (call_fn). */
	const struct sl_stream_ops *stream;
};

/* ---- event streams (redis_stream.c, nats.c, kafka.c) ----
 *
 * A stream connector is read through subscriptions: a subscription is one
 * member of a consumer group (Redis group, JetStream durable pull consumer,
 * Kafka group), with its own connection, used by one thread at a time.
 * Messages are delivered at least once; the caller acknowledges a message
 * only after what it did with it is durable, so a crash before the ack
 * makes the broker deliver it again (a redelivery). Each message has an
 * identity that is the same on every delivery (stream + entry id, stream
 * sequence, topic-partition-offset): the caller deduplicates by it. */
struct sl_stream_msg {
	char *identity;   /* owned; "redis:orders:1700000000000-0", "nats:ORDERS:42", "kafka:orders:1:42" */
	json_t *data;     /* owned; the body as JSON (not JSON: a string) */
	bool redelivered; /* the broker delivered it before (reclaimed, redelivered) */
	void *handle;     /* the type's (natsMsg*, Kafka partition/offset); freed by msgs_free */
};

struct sl_stream_sub_opts {
	const char *group;    /* consumer group / durable name; NULL: the connector's */
	const char *consumer; /* this member's name, unique among live members */
	bool reclaim;         /* this member also takes over entries another member left unacknowledged */
};

struct sl_stream_ops {
	/* Connects and joins the group (creating the stream/group when the config
	 * allows). *sub is owned, freed by sub_close_fn. */
	int (*sub_open_fn)(struct sl_connector *c, const struct sl_stream_sub_opts *o, void **sub,
			   struct sl_err *err);
	/* Up to max messages, waiting at most wait_ms for the first one. out has
	 * room for max; *n may be 0 (nothing came). */
	int (*fetch_fn)(void *sub, size_t max, int64_t wait_ms, struct sl_stream_msg *out, size_t *n,
			struct sl_err *err);
	/* Acknowledges (commits) the messages: they are not delivered again. */
	int (*ack_fn)(void *sub, struct sl_stream_msg *m, size_t n, struct sl_err *err);
	/* Messages of the group not yet acknowledged (delivered or not). */
	int (*lag_fn)(void *sub, int64_t *lag, struct sl_err *err);
	void (*msg_free_fn)(struct sl_stream_msg *m); /* frees handle; NULL: nothing to free */
	void (*sub_close_fn)(void *sub);
};

/* Wrappers that keep the connector's health (as sl_connector_call does). */
bool sl_stream_is(const struct sl_connector *c);
int sl_stream_open(struct sl_connector *c, const struct sl_stream_sub_opts *o, void **sub, struct sl_err *err);
int sl_stream_fetch(struct sl_connector *c, void *sub, size_t max, int64_t wait_ms, struct sl_stream_msg *out,
		    size_t *n, struct sl_err *err);
int sl_stream_ack(struct sl_connector *c, void *sub, struct sl_stream_msg *m, size_t n, struct sl_err *err);
/* Asks the broker for the group's lag and keeps it in the health (lag). */
int sl_stream_lag(struct sl_connector *c, void *sub, int64_t *lag, struct sl_err *err);
void sl_stream_msgs_free(struct sl_connector *c, struct sl_stream_msg *m, size_t n);
void sl_stream_close(struct sl_connector *c, void *sub);
/* Counts consumption for health ({consumed, redelivered, duplicates}). */
void sl_stream_count(struct sl_connector *c, uint64_t consumed, uint64_t redelivered, uint64_t duplicates);

/* A message's identity: "TYPE:STREAM:POSITION" (redis: the entry id;
 * nats: the stream sequence; kafka: "PARTITION:OFFSET"). Owned. */
char *sl_stream_identity(const char *type, const char *stream, const char *position);

/* The message's body as run input: JSON text parsed (a CloudEvents
 * structured envelope, holding "specversion", yields its "data"), anything
 * else as a string. Returns owned. */
json_t *sl_stream_body_json(const char *body, size_t len);

/* A CloudEvents 1.0 structured-mode envelope (JSON): specversion "1.0",
 * id, source, type, time (now, RFC 3339), datacontenttype
 * "application/json", data (borrowed, a reference is taken). Returns owned.
 * Shared by the emit step and anything else that publishes events. */
json_t *sl_cloudevent_new(const char *id, const char *source, const char *type, const json_t *data);

/* Health, kept by the generic call wrapper for every type. */
struct sl_health {
	bool healthy;            /* false after an auth error until a success */
	int64_t last_success_ms; /* 0 = never */
	int64_t last_error_ms;   /* 0 = never */
	enum sl_class last_error_class;
	char last_error[256];    /* never holds a secret */
	uint64_t calls, errors;
	/* streams: lag from the last sl_stream_lag (-1: not known) and counts */
	bool stream;
	int64_t lag;
	uint64_t consumed, redelivered, duplicates;
};

struct sl_connector {
	char *name;
	const struct sl_connector_type *type;
	char *file;      /* source file */
	json_t *config;  /* the whole document (owned ref) */
	struct sl_action *actions;
	size_t nactions;
	void *priv;      /* the type's state */
	pthread_mutex_t health_mu;
	struct sl_health health;
};

/* The static registry. */
const struct sl_connector_type *sl_connector_type_find(const char *name);
/* NULL-terminated list of type names (static). */
const char *const *sl_connector_type_names(void);

/* Builds a connector from its document (borrowed; a reference is kept):
 * checks common keys (connector, type, description, actions), then the
 * type's keys, then each action (effect is required unless built in).
 * Returns NULL when ctx->nerrors > 0 afterwards. */
struct sl_connector *sl_connector_new(const json_t *doc, struct sl_conf_ctx *ctx);
void sl_connector_free(struct sl_connector *c);
const struct sl_action *sl_connector_action(const struct sl_connector *c, const char *name);

/* Calls an action and keeps health up to date. res->output is owned by the
 * caller on success. */
int sl_connector_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		      struct sl_call_result *res, struct sl_err *err);
int sl_connector_poll(struct sl_connector *c, const struct sl_action *a, const char *cursor, size_t max,
		      struct sl_poll_result *res, struct sl_err *err);
void sl_connector_health(struct sl_connector *c, struct sl_health *out);

/* Maps an HTTP status to an error class (DESIGN.md §3): 408/425/429/5xx
 * transient, 401/403 auth, other 4xx permanent, else none. */
enum sl_class sl_http_status_class(int status);
/* Parses a Retry-After value (seconds or an HTTP date) into ms; -1 if bad. */
int64_t sl_retry_after_parse(const char *value, int64_t now_ms);

#endif
