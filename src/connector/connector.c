/*
 * connector.c: the static registry of connector types, the generic part of
 * building a connector from its document (common keys, actions, built-in
 * actions), the call/poll wrappers that keep health, and the config-schema
 * helpers every type uses (sl_conf_*).
 *
 * The types themselves live in http.c and file.c; they only see
 * connector_priv.h besides the public header.
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the registry ----------------------------------------------------------- */

/* One list, looked up by name (STYLE.md habit 3). A new type is one line
 * here and one line in type_names. */
static const struct sl_connector_type *const registry[] = {
	&sl_conn__http_type,
	&sl_conn__file_type,
	&sl_conn__redis_stream_type,
	&sl_conn__nats_type,
	&sl_conn__kafka_type,
};
static const char *const type_names[] = {"http", "file", "redis_stream", "nats", "kafka", NULL};

const struct sl_connector_type *sl_connector_type_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < SL_ARRAY_LEN(registry); i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

const char *const *sl_connector_type_names(void)
{
	return type_names;
}

/* ---- effects and status classes ------------------------------------------------ */

static const char *const effect_names[] = {"read", "write", "delete", NULL};

const char *sl_effect_name(enum sl_effect e)
{
	if ((unsigned)e >= SL_ARRAY_LEN(effect_names) - 1)
		return "?";
	return effect_names[e];
}

int sl_effect_parse(const char *name)
{
	for (int i = 0; name && effect_names[i]; i++)
		if (strcmp(name, effect_names[i]) == 0)
			return i;
	return -1;
}

enum sl_class sl_http_status_class(int status)
{
	if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599))
		return SL_CLASS_TRANSIENT;
	if (status == 401 || status == 403)
		return SL_CLASS_AUTH;
	if (status >= 400 && status <= 499)
		return SL_CLASS_PERMANENT;
	return SL_CLASS_NONE;
}

/* A peer can ask for any delay; more than a day is a misconfiguration on its
 * side, and the engine caps its own backoff anyway. Clamping keeps the
 * arithmetic far from overflow. */
#define RETRY_AFTER_MAX_S (24 * 3600)
#define RETRY_AFTER_TEXT_MAX 64

/* HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the two obsolete forms a
 * recipient must still accept. */
static int64_t retry_after_date(const char *s, int64_t now_ms)
{
	static const char *const formats[] = {
		"%a, %d %b %Y %H:%M:%S GMT", /* Sun, 06 Nov 1994 08:49:37 GMT */
		"%A, %d-%b-%y %H:%M:%S GMT", /* Sunday, 06-Nov-94 08:49:37 GMT */
		"%a %b %e %H:%M:%S %Y",      /* Sun Nov  6 08:49:37 1994 */
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(formats); i++) {
		struct tm tm;
		memset(&tm, 0, sizeof tm);
		const char *end = strptime(s, formats[i], &tm);
		if (!end || *end)
			continue;
		time_t t = timegm(&tm);
		if (t == (time_t)-1)
			return -1;
		int64_t ms = (int64_t)t * 1000 - now_ms;
		if (ms < 0)
			return 0; /* a date in the past means "now" */
		return SL_MIN(ms, (int64_t)RETRY_AFTER_MAX_S * 1000);
	}
	return -1;
}

int64_t sl_retry_after_parse(const char *value, int64_t now_ms)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
		     value[n - 1] == '\n'))
		n--;
	if (n == 0 || n >= RETRY_AFTER_TEXT_MAX)
		return -1;
	char text[RETRY_AFTER_TEXT_MAX];
	memcpy(text, value, n);
	text[n] = '\0';

	bool digits = true;
	for (size_t i = 0; i < n; i++)
		if (text[i] < '0' || text[i] > '9')
			digits = false;
	if (!digits)
		return retry_after_date(text, now_ms);
	int64_t secs = 0;
	for (size_t i = 0; i < n; i++) {
		secs = secs * 10 + (text[i] - '0');
		if (secs > RETRY_AFTER_MAX_S)
			return (int64_t)RETRY_AFTER_MAX_S * 1000;
	}
	return secs * 1000;
}

/* ---- config reporting ------------------------------------------------------------ */

void sl_conf_error(struct sl_conf_ctx *ctx, const char *pointer, const char *fmt, ...)
{
	char msg[SL_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ctx->nerrors++;
	if (ctx->report_fn) {
		ctx->report_fn(ctx, pointer ? pointer : "", msg);
		return;
	}
	/* No loader attached (a tool or a test): the message must still go
	 * somewhere a person sees it. */
	sl_log(SL_LOG_ERROR, "connector", msg, "file", ctx->file, "pointer", pointer, NULL);
}

void sl_conf_origin(struct sl_conf_ctx *ctx, const char *pointer, const char *what,
		    struct sl_expr_origin *out, int *line, int *col)
{
	int l = 0, c = 0;
	if (ctx && ctx->locate_fn)
		ctx->locate_fn(ctx, pointer ? pointer : "", &l, &c);
	out->file = ctx ? ctx->file : NULL;
	out->line = l;
	out->col = c;
	out->what = what;
	if (line)
		*line = l;
	if (col)
		*col = c;
}

void sl_conf_ptr(char out[SL_CONF_PTR_MAX], const char *base, const char *key)
{
	struct sl_buf b;
	sl_buf_init(&b, SL_CONF_PTR_MAX - 1);
	sl_buf_adds(&b, base ? base : "");
	sl_buf_addc(&b, '/');
	for (const char *p = key; *p; p++) {
		if (*p == '~')
			sl_buf_adds(&b, "~0");
		else if (*p == '/')
			sl_buf_adds(&b, "~1");
		else
			sl_buf_addc(&b, *p);
	}
	/* On overflow the buffer keeps what fitted: a cut pointer still points
	 * near the problem. */
	snprintf(out, SL_CONF_PTR_MAX, "%s", sl_buf_str(&b));
	sl_buf_free(&b);
}

/* ---- config schema checks ---------------------------------------------------------- */

#define CONF_KEYS_MAX 64 /* keys of one block, all tables together */

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "a mapping";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "empty (null)";
	}
	return "?";
}

/* Returns NULL when v suits t, else what was expected. */
static const char *conf_type_mismatch(enum sl_conf_type t, const json_t *v)
{
	int64_t ms;
	switch (t) {
	case SL_CONF_STRING:
		return json_is_string(v) ? NULL : "a string";
	case SL_CONF_INT:
		return json_is_integer(v) ? NULL : "an integer";
	case SL_CONF_BOOL:
		return json_is_boolean(v) ? NULL : "true or false";
	case SL_CONF_OBJECT:
		return json_is_object(v) ? NULL : "a mapping";
	case SL_CONF_ARRAY:
		return json_is_array(v) ? NULL : "a list";
	case SL_CONF_ANY:
		return NULL;
	case SL_CONF_DURATION:
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			return NULL;
		if (json_is_string(v) && sl_parse_duration_ms(json_string_value(v), &ms) == 0)
			return NULL;
		return "a duration like \"10s\", \"500ms\", \"2m\" or a number of milliseconds";
	case SL_CONF_JQ:
		return json_is_string(v) && json_string_length(v) > 0 ? NULL : "a jq expression (a string)";
	}
	return "a known type";
}

static const struct sl_conf_key *conf_find_key(const struct sl_conf_key *const *tables, size_t ntables,
					       const char *name)
{
	for (size_t t = 0; t < ntables; t++)
		for (const struct sl_conf_key *k = tables[t]; k && k->name; k++)
			if (strcmp(k->name, name) == 0)
				return k;
	return NULL;
}

static void conf_report_unknown(struct sl_conf_ctx *ctx, const char *pointer, const char *key,
				const struct sl_conf_key *const *tables, size_t ntables)
{
	const char *names[CONF_KEYS_MAX + 1];
	size_t n = 0;
	for (size_t t = 0; t < ntables; t++)
		for (const struct sl_conf_key *k = tables[t]; k && k->name && n < CONF_KEYS_MAX; k++)
			names[n++] = k->name;
	names[n] = NULL;
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, pointer, key);
	const char *best = sl_did_you_mean(key, names);
	if (best)
		sl_conf_error(ctx, p, "unknown key \"%s\" (did you mean \"%s\"?)", key, best);
	else
		sl_conf_error(ctx, p, "unknown key \"%s\"", key);
}

/* The one checker behind sl_conf_check_keys; several tables let the generic
 * layer check common keys and a type's keys in one pass, so "did you mean"
 * sees all of them. */
static int conf_check_tables(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
			     const struct sl_conf_key *const *tables, size_t ntables, bool report_unknown)
{
	int before = ctx->nerrors;
	if (!json_is_object(obj)) {
		sl_conf_error(ctx, pointer, "expected a mapping, got %s", json_kind(obj));
		return ctx->nerrors - before;
	}
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		const struct sl_conf_key *k = conf_find_key(tables, ntables, key);
		if (!k) {
			if (report_unknown)
				conf_report_unknown(ctx, pointer, key, tables, ntables);
			continue;
		}
		const char *want = conf_type_mismatch(k->type, v);
		if (want) {
			char p[SL_CONF_PTR_MAX];
			sl_conf_ptr(p, pointer, key);
			sl_conf_error(ctx, p, "\"%s\" must be %s, not %s", key, want, json_kind(v));
		}
	}
	for (size_t t = 0; t < ntables; t++)
		for (const struct sl_conf_key *k = tables[t]; k && k->name; k++)
			if (k->required && !json_object_get(obj, k->name))
				sl_conf_error(ctx, pointer, "missing required key \"%s\"", k->name);
	return ctx->nerrors - before;
}

int sl_conf_check_keys(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer,
		       const struct sl_conf_key *keys)
{
	const struct sl_conf_key *tables[1] = {keys};
	return conf_check_tables(ctx, obj, pointer ? pointer : "", tables, 1, true);
}

/* ---- typed getters shared with the types -------------------------------------------- */

const char *sl_conf_str(const json_t *obj, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : def;
}

bool sl_conf_bool(const json_t *obj, const char *key, bool def)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_boolean(v) ? json_is_true(v) : def;
}

int64_t sl_conf_duration(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer, const char *key,
			  int64_t def)
{
	const json_t *v = json_object_get(obj, key);
	if (!v)
		return def;
	int64_t ms = -1;
	if (json_is_integer(v))
		ms = json_integer_value(v);
	else if (!json_is_string(v) || sl_parse_duration_ms(json_string_value(v), &ms) != 0)
		return def; /* the key check reported the type */
	if (ms <= 0) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, pointer, key);
		sl_conf_error(ctx, p, "\"%s\" must be a positive duration like \"10s\" or milliseconds", key);
		return def;
	}
	return ms;
}

int sl_conf_secret(struct sl_conf_ctx *ctx, const json_t *obj, const char *pointer, const char *key,
		    bool required, char **out)
{
	*out = NULL;
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, pointer, key);
	const json_t *v = json_object_get(obj, key);
	if (!v) {
		if (!required)
			return 0;
		sl_conf_error(ctx, pointer, "missing required key \"%s\"", key);
		return -1;
	}
	const char *ref = json_string_value(v);
	if (!ref)
		return -1; /* not a string: the key check reported it */
	/* The value itself is never echoed: it may be the very secret. */
	if (!sl_secret_is_ref(ref) || !ref[ref[0] == 'e' ? 4 : 5]) {
		sl_conf_error(ctx, p, "\"%s\" holds a plain value: use env:NAME or file:PATH for secrets", key);
		return -1;
	}
	if (!ctx->resolve_secrets)
		return 0;
	struct sl_err e;
	sl_err_clear(&e);
	if (sl_secret_resolve(ref, ctx->project_dir, out, &e) != 0) {
		sl_conf_error(ctx, p, "%s", e.msg);
		return -1;
	}
	return 0;
}

void sl_secret_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

#define REDACT_MIN 4
static const char redact_mark[] = "***";

void sl_redact_secrets(char *msg, size_t cap, const char *const *secrets, size_t nsecrets)
{
	(void)cap; /* the mark is shorter than any secret redacted: in place, never grows */
	for (size_t i = 0; i < nsecrets; i++) {
		const char *s = secrets[i];
		size_t sl = s ? strlen(s) : 0;
		if (sl < REDACT_MIN)
			continue;
		char *hit;
		char *from = msg;
		while ((hit = strstr(from, s)) != NULL) {
			size_t tail = strlen(hit + sl);
			memcpy(hit, redact_mark, sizeof redact_mark - 1);
			memmove(hit + sizeof redact_mark - 1, hit + sl, tail + 1);
			from = hit + sizeof redact_mark - 1;
		}
	}
}

enum sl_class sl_conn__errno_class(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case EIO:
	case EAGAIN:
	case EINTR:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EBUSY:
	case ETIMEDOUT:
	case ENOLCK:
		return SL_CLASS_TRANSIENT;
	default:
		return SL_CLASS_PERMANENT;
	}
}

/* ---- building a connector ----------------------------------------------------------- */

static const struct sl_conf_key common_keys[] = {
	{"connector", SL_CONF_STRING, true, "the connector's name; workflows call NAME.ACTION"},
	{"type", SL_CONF_STRING, true, "the connector type: http, file"},
	{"description", SL_CONF_STRING, false, "what this connector talks to"},
	{"actions", SL_CONF_OBJECT, false, "named actions: NAME -> {effect, ...}"},
	{NULL, 0, false, NULL},
};

static const struct sl_conf_key common_action_keys[] = {
	{"effect", SL_CONF_STRING, false, "read, write or delete (required unless the action is built in)"},
	{"description", SL_CONF_STRING, false, "what the action does"},
	{NULL, 0, false, NULL},
};

/* Names end up in `call: NAME.ACTION`, metric labels and file names: keep
 * them to a plain alphabet. The connector name may not hold a dot, because
 * the first dot of a call separates it from the action. */
static bool name_ok(const char *s, bool allow_dot)
{
	if (!s || !*s || strlen(s) > 128)
		return false;
	for (const char *p = s; *p; p++) {
		char ch = *p;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			  ch == '_' || ch == '-' || (allow_dot && ch == '.');
		if (!ok)
			return false;
	}
	return true;
}

/* The built-in effect of name, or -1 when name is not built in. */
static int builtin_effect(const struct sl_connector_type *t, const char *name)
{
	for (const char *const *b = t->builtin_actions; b && b[0]; b += 2)
		if (strcmp(b[0], name) == 0)
			return sl_effect_parse(b[1]);
	return -1;
}

static int action_effect(struct sl_conf_ctx *ctx, const struct sl_connector_type *t, const char *name,
			 const json_t *block, const char *pointer)
{
	int builtin = builtin_effect(t, name);
	const char *ename = sl_conf_str(block, "effect", NULL);
	char p[SL_CONF_PTR_MAX];
	sl_conf_ptr(p, pointer, "effect");
	if (!ename) {
		if (builtin < 0 && json_is_object(block) && !json_object_get(block, "effect"))
			sl_conf_error(ctx, pointer, "missing required key \"effect\" (read, write or delete)");
		return builtin;
	}
	int e = sl_effect_parse(ename);
	if (e < 0) {
		const char *best = sl_did_you_mean(ename, effect_names);
		sl_conf_error(ctx, p, "unknown effect \"%s\"%s%s%s (want read, write or delete)", ename,
			      best ? " (did you mean \"" : "", best ? best : "", best ? "\"?)" : "");
		return -1;
	}
	if (builtin >= 0 && e != builtin) {
		sl_conf_error(ctx, p, "the built-in action \"%s\" is a %s action", name,
			      sl_effect_name((enum sl_effect)builtin));
		return -1;
	}
	return e;
}

static void action_fill(struct sl_action *a, const char *name, int effect, const json_t *block,
			struct sl_conf_ctx *ctx, const char *pointer)
{
	a->name = sl_strdup(name);
	a->effect = effect < 0 ? SL_EFFECT_READ : (enum sl_effect)effect;
	a->config = json_is_object(block) ? json_incref((json_t *)block) : json_object();
	if (ctx->locate_fn && pointer)
		ctx->locate_fn(ctx, pointer, &a->line, &a->col);
}

/* Declared actions first (document order), then built-ins not declared. */
static void build_actions(struct sl_connector *c, const json_t *actions, struct sl_conf_ctx *ctx)
{
	const struct sl_connector_type *t = c->type;
	size_t nbuiltin = 0;
	for (const char *const *b = t->builtin_actions; b && b[0]; b += 2)
		nbuiltin++;
	size_t cap = json_object_size(actions) + nbuiltin;
	c->actions = sl_xcalloc(cap ? cap : 1, sizeof *c->actions);

	const struct sl_conf_key *tables[2] = {common_action_keys, t->action_keys};
	const char *name;
	json_t *block;
	json_object_foreach((json_t *)actions, name, block) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, "/actions", name);
		if (!name_ok(name, true)) {
			sl_conf_error(ctx, p, "action name \"%s\" may hold only letters, digits, _, - and .", name);
			continue;
		}
		bool builtin = builtin_effect(t, name) >= 0;
		if (!(builtin && json_is_null(block)))
			conf_check_tables(ctx, block, p, tables, 2, true);
		int effect = action_effect(ctx, t, name, block, p);
		action_fill(&c->actions[c->nactions++], name, effect, block, ctx, p);
	}
	for (const char *const *b = t->builtin_actions; b && b[0]; b += 2) {
		if (json_object_get(actions, b[0]))
			continue;
		action_fill(&c->actions[c->nactions++], b[0], sl_effect_parse(b[1]), NULL, ctx, NULL);
	}
}

static void report_unknown_type(struct sl_conf_ctx *ctx, const char *tname)
{
	char known[128] = "";
	for (size_t i = 0, off = 0; type_names[i] && off < sizeof known; i++)
		off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", type_names[i]);
	const char *best = sl_did_you_mean(tname, type_names);
	if (best)
		sl_conf_error(ctx, "/type", "unknown connector type \"%s\" (did you mean \"%s\"?)", tname, best);
	else
		sl_conf_error(ctx, "/type", "unknown connector type \"%s\" (known: %s)", tname, known);
}

/* Checks the parts every type shares and returns the type, or NULL when the
 * document cannot be built further. */
static const struct sl_connector_type *check_common(const json_t *doc, struct sl_conf_ctx *ctx)
{
	if (!json_is_object(doc)) {
		sl_conf_error(ctx, "", "a connector file must be a mapping with connector:, type: and actions:");
		return NULL;
	}
	const char *tname = sl_conf_str(doc, "type", NULL);
	const struct sl_connector_type *t = sl_connector_type_find(tname);
	if (tname && !t)
		report_unknown_type(ctx, tname);
	/* With an unknown type, unknown-key errors would only be noise. */
	const struct sl_conf_key *tables[2] = {common_keys, t ? t->keys : NULL};
	conf_check_tables(ctx, doc, "", tables, 2, t != NULL);
	const char *name = sl_conf_str(doc, "connector", NULL);
	if (name && !name_ok(name, false)) {
		sl_conf_error(ctx, "/connector", "connector name \"%s\" may hold only letters, digits, _ and -", name);
		return NULL;
	}
	return name ? t : NULL;
}

struct sl_connector *sl_connector_new(const json_t *doc, struct sl_conf_ctx *ctx)
{
	int before = ctx->nerrors;
	const struct sl_connector_type *t = check_common(doc, ctx);
	if (!t)
		return NULL;

	struct sl_connector *c = sl_xcalloc(1, sizeof *c);
	c->name = sl_strdup(sl_conf_str(doc, "connector", ""));
	c->type = t;
	c->file = sl_strdup(ctx->file);
	c->config = json_incref((json_t *)doc);
	pthread_mutex_init(&c->health_mu, NULL);
	c->health.healthy = true;
	c->health.last_error_class = SL_CLASS_NONE;
	c->health.lag = -1; /* streams: not asked yet */

	/* Types run even after a key problem, so that `sluice check` lists every
	 * problem at once: their getters fall back to defaults on a value of the
	 * wrong type (already reported) and their init leaves c->priv usable. */
	if (t->init_fn)
		t->init_fn(c, ctx);
	const json_t *actions = json_object_get(doc, "actions");
	build_actions(c, json_is_object(actions) ? actions : NULL, ctx);
	for (size_t i = 0; t->action_init_fn && i < c->nactions; i++) {
		char p[SL_CONF_PTR_MAX];
		sl_conf_ptr(p, "/actions", c->actions[i].name);
		t->action_init_fn(c, &c->actions[i], ctx, p);
	}
	if (ctx->nerrors != before) {
		sl_connector_free(c);
		return NULL;
	}
	return c;
}

void sl_connector_free(struct sl_connector *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nactions; i++) {
		struct sl_action *a = &c->actions[i];
		if (c->type->action_free_fn)
			c->type->action_free_fn(a);
		free(a->name);
		json_decref(a->config);
	}
	free(c->actions);
	if (c->type->close_fn)
		c->type->close_fn(c);
	pthread_mutex_destroy(&c->health_mu);
	free(c->name);
	free(c->file);
	json_decref(c->config);
	free(c);
}

const struct sl_action *sl_connector_action(const struct sl_connector *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->nactions; i++)
		if (strcmp(c->actions[i].name, name) == 0)
			return &c->actions[i];
	return NULL;
}

/* ---- calls, polls and health --------------------------------------------------------- */

static void health_record(struct sl_connector *c, int rc, const struct sl_err *err)
{
	int64_t now = sl_now_ms();
	pthread_mutex_lock(&c->health_mu);
	c->health.calls++;
	if (rc == 0) {
		c->health.healthy = true;
		c->health.last_success_ms = now;
	} else {
		c->health.errors++;
		c->health.last_error_ms = now;
		c->health.last_error_class = err->cls;
		snprintf(c->health.last_error, sizeof c->health.last_error, "%s", err->msg);
		/* Only credentials make the connector itself unhealthy: a 404 or a
		 * timeout says something about one request or one moment. */
		if (err->cls == SL_CLASS_AUTH)
			c->health.healthy = false;
	}
	pthread_mutex_unlock(&c->health_mu);
}

/* A type that failed without saying how still yields a usable error. */
static int settle_error(int rc, struct sl_err *err)
{
	if (rc > 0)
		rc = SL_ESTEP;
	if (err->code == 0)
		err->code = rc;
	if (err->cls == SL_CLASS_NONE)
		err->cls = SL_CLASS_PERMANENT;
	if (!err->msg[0])
		snprintf(err->msg, sizeof err->msg, "%s", sl_code_message(rc));
	return rc;
}

static int check_args(const struct sl_connector *c, const struct sl_action *a, struct sl_err *err)
{
	if (!c || !a)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "no connector or action given");
	if (a < c->actions || a >= c->actions + c->nactions)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "action %s is not an action of connector %s",
				  a->name, c->name);
	return 0;
}

int sl_connector_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		      struct sl_call_result *res, struct sl_err *err)
{
	struct sl_err local;
	if (!err)
		err = &local;
	sl_err_clear(err);
	res->output = NULL;
	res->status = 0;
	int rc = check_args(c, a, err);
	if (rc)
		return rc;
	static const struct sl_call no_call = {0};
	if (!call)
		call = &no_call;
	if (!c->type->call_fn)
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "connector type %s has no callable actions",
				c->type->name);
	else
		rc = c->type->call_fn(c, a, call, res, err);
	if (rc == 0 && !res->output)
		res->output = json_null();
	if (rc != 0) {
		rc = settle_error(rc, err);
		json_decref(res->output);
		res->output = NULL;
	}
	health_record(c, rc, err);
	if (rc != 0)
		sl_log(SL_LOG_DEBUG, "connector", "call failed", "connector", c->name, "action", a->name, "run_id",
		       call->run_id, "step_id", call->step_id, "correlation_id", call->correlation_id, "class",
		       sl_class_name(err->cls), "error", err->msg, NULL);
	return rc;
}

int sl_connector_poll(struct sl_connector *c, const struct sl_action *a, const char *cursor, size_t max,
		      struct sl_poll_result *res, struct sl_err *err)
{
	struct sl_err local;
	if (!err)
		err = &local;
	sl_err_clear(err);
	res->records = NULL;
	res->cursor = NULL;
	int rc = check_args(c, a, err);
	if (rc)
		return rc;
	if (!c->type->poll_fn)
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "connector type %s cannot be polled",
				c->type->name);
	else
		rc = c->type->poll_fn(c, a, cursor, max, res, err);
	if (rc == 0) {
		if (!res->records)
			res->records = json_array();
		if (!res->cursor)
			res->cursor = sl_strdup(cursor ? cursor : "");
	} else {
		rc = settle_error(rc, err);
		json_decref(res->records);
		res->records = NULL;
		free(res->cursor);
		res->cursor = NULL;
	}
	health_record(c, rc, err);
	return rc;
}

void sl_connector_health(struct sl_connector *c, struct sl_health *out)
{
	pthread_mutex_lock(&c->health_mu);
	*out = c->health;
	pthread_mutex_unlock(&c->health_mu);
}
