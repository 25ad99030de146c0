/*
 * util: the helpers every module shares: the error struct and error classes,
 * bounded growable buffers, time, ids, hashing, logging, durations, files.
 *
 * Nothing here includes a header from another Sluice module.
 *
 * Conventions used across Sluice (see docs/internals/util.md):
 *   - functions return 0 on success and a negative SL_E* code on failure; the
 *     detail goes into a caller-provided struct sl_err, never a global;
 *   - "borrows" means the callee keeps no reference; "takes" means ownership
 *     moves to the callee; "returns owned" means the caller frees.
 */
#ifndef SL_UTIL_H
#define SL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- return codes: one table, so names and messages never drift ------- */
#define SL_ERRNO_MAP(X)                                   \
	X(OK, 0, "ok")                                    \
	X(NOMEM, -1, "out of memory")                     \
	X(IO, -2, "input/output error")                   \
	X(INVAL, -3, "invalid argument or input")         \
	X(NOTFOUND, -4, "not found")                      \
	X(EXISTS, -5, "already exists")                   \
	X(TOOBIG, -6, "too large")                        \
	X(STORE, -7, "store error")                       \
	X(FENCED, -8, "lease lost (stale fencing token)") \
	X(STEP, -9, "step failed")                        \
	X(TIMEOUT, -10, "timed out")                      \
	X(BUSY, -11, "busy, try again")

enum sl_code {
#define SL_CODE_ENUM(name, val, msg) SL_E##name = (val),
	SL_ERRNO_MAP(SL_CODE_ENUM)
#undef SL_CODE_ENUM
};
const char *sl_code_name(int code);    /* "NOTFOUND" */
const char *sl_code_message(int code); /* "not found" */

/* ---- step error classes (DESIGN.md §3) ------------------------------------ */
#define SL_CLASS_MAP(X)         \
	X(NONE, "none")         \
	X(TRANSIENT, "transient") \
	X(PERMANENT, "permanent") \
	X(AUTH, "auth")         \
	X(CONTRACT, "contract") \
	X(POLICY, "policy")     \
	X(BUDGET, "budget")

enum sl_class {
#define SL_CLASS_ENUM(name, str) SL_CLASS_##name,
	SL_CLASS_MAP(SL_CLASS_ENUM)
#undef SL_CLASS_ENUM
	SL_CLASS__COUNT
};
const char *sl_class_name(enum sl_class c);
/* Returns the class for a name, or -1 when the name is unknown. */
int sl_class_parse(const char *name);

/* ---- the error struct ----------------------------------------------------- */
#define SL_ERR_MSG_MAX 1024
#define SL_ERR_FILE_MAX 512

struct sl_err {
	int code;                   /* SL_E* */
	enum sl_class cls;          /* step error class, SL_CLASS_NONE if n/a */
	int line, col;              /* 1-based source position, 0 when unknown */
	int http_status;            /* status of the response that failed, or 0 */
	int64_t retry_after_ms;     /* a Retry-After the peer asked for, or -1 */
	char file[SL_ERR_FILE_MAX]; /* source file, "" when unknown */
	char msg[SL_ERR_MSG_MAX];
};

void sl_err_clear(struct sl_err *e);
/* Sets code, class and a printf-style message; returns code, so that
 * `return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "...")` reads well.
 * err may be NULL (the message is dropped). */
int sl_err_set(struct sl_err *e, int code, enum sl_class cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same, with a source position. */
int sl_err_setloc(struct sl_err *e, int code, const char *file, int line, int col,
		  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Prepends "prefix: " to the message. */
void sl_err_prefix(struct sl_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- a list of diagnostics (all errors of `sluice check`) ------------------ */
struct sl_diag {
	char *file; /* owned */
	int line, col;
	char *msg; /* owned */
};
struct sl_diags {
	struct sl_diag *v;
	size_t n, cap;
};
void sl_diags_add(struct sl_diags *d, const char *file, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void sl_diags_free(struct sl_diags *d);
/* Sorts by file, line, col (stable), so the output is in reading order. */
void sl_diags_sort(struct sl_diags *d);

/* ---- bounded growable buffer (curl dynbuf / Varnish vsb) --------------------
 * Created with a named maximum; an append that would pass it, or fails to
 * allocate, sets a sticky error and is ignored; check once at the end. The
 * content is always NUL-terminated. */
#define SL_BUF_MAX_LINE (64 * 1024)
#define SL_BUF_MAX_HTTP_BODY (16 * 1024 * 1024)
#define SL_BUF_MAX_FILE (64 * 1024 * 1024)

struct sl_buf {
	char *p;
	size_t len, cap, max;
	int err; /* 0, SL_ENOMEM or SL_ETOOBIG: sticky */
};
void sl_buf_init(struct sl_buf *b, size_t max);
void sl_buf_free(struct sl_buf *b);
void sl_buf_reset(struct sl_buf *b); /* len = 0, keeps memory, clears err */
int sl_buf_add(struct sl_buf *b, const void *data, size_t len);
int sl_buf_adds(struct sl_buf *b, const char *s);
int sl_buf_addc(struct sl_buf *b, char c);
int sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sl_buf_vprintf(struct sl_buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included. */
int sl_buf_add_json_str(struct sl_buf *b, const char *s);
/* Returns the content (owned by the caller, NUL-terminated) and resets b;
 * NULL when b has an error (b is freed then). */
char *sl_buf_detach(struct sl_buf *b);
static inline const char *sl_buf_str(const struct sl_buf *b) { return b->p ? b->p : ""; }

/* ---- strings -------------------------------------------------------------- */
char *sl_strdup(const char *s);                /* NULL-safe; aborts on OOM */
char *sl_strndup(const char *s, size_t n);     /* aborts on OOM */
char *sl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* aborts on OOM */
void *sl_xmalloc(size_t n);                    /* aborts on OOM */
void *sl_xcalloc(size_t n, size_t size);       /* aborts on OOM */
void *sl_xrealloc(void *p, size_t n);          /* aborts on OOM */
bool sl_str_startswith(const char *s, const char *prefix);
bool sl_str_endswith(const char *s, const char *suffix);
/* Levenshtein distance, capped at max+1 (cheap "did you mean"). */
size_t sl_edit_distance(const char *a, const char *b, size_t max);
/* Of the NULL-terminated candidates, the closest to word within a distance
 * that makes sense for its length, or NULL. Borrowed from candidates. */
const char *sl_did_you_mean(const char *word, const char *const *candidates);
/* Strict integer parsing (no atoi): whole string, base 10, in range. */
int sl_parse_i64(const char *s, int64_t *out);

/* ---- time ----------------------------------------------------------------- */
int64_t sl_now_ms(void);  /* wall clock, ms since the epoch (sl_clock_set can fake it) */
int64_t sl_mono_ms(void); /* monotonic, ms */
/* The start of the UTC day / month holding t (ms since the epoch). */
int64_t sl_utc_day_start_ms(int64_t t_ms);
int64_t sl_utc_month_start_ms(int64_t t_ms);
int64_t sl_mono_us(void); /* monotonic, µs */
/* Tests may fake the wall clock: ms > 0 fixes it, 0 returns to the real one. */
void sl_clock_set(int64_t ms);
/* Parses "250ms", "30s", "5m", "4h", "2d", "1h30m"; a bare number is ms. */
int sl_parse_duration_ms(const char *s, int64_t *out);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds into out. */
void sl_time_format(int64_t ms, char out[32]);
/* Parses an RFC 3339 date-time ("2026-11-23T10:00:00Z", offsets, fractions). */
int sl_time_parse(const char *s, int64_t *ms_out);

/* ---- ids, randomness, hashing --------------------------------------------- */
/* A sortable unique id: 26 chars of Crockford base32 (48-bit ms time, 80
 * random bits; ULID layout) plus an optional prefix, e.g. "run_01J...". */
#define SL_ID_MAX 40
void sl_id_new(const char *prefix, char out[SL_ID_MAX]);
/* Cryptographic random bytes (getrandom); aborts if the kernel refuses. */
void sl_random_bytes(void *buf, size_t n);
/* Uniform in [0, n) from a fast thread-local generator (jitter, not keys). */
uint64_t sl_random_below(uint64_t n);
/* SHA-256 of data as 64 lowercase hex chars + NUL. */
void sl_sha256_hex(const void *data, size_t len, char out[65]);
void sl_hmac_sha256(const void *key, size_t klen, const void *data, size_t dlen, unsigned char out[32]);
/* The W3C trace id of a correlation id: the id itself when it is 32
 * lower-case hex digits (it came from a traceparent), else the first 32 hex
 * digits of its SHA-256, so every hop of one run shares one trace. */
void sl_trace_id(const char *correlation_id, char out[33]);
/* A W3C traceparent header value for a new span of that trace:
 * "00-TRACEID-SPANID-01" (span id random). */
void sl_traceparent(const char *correlation_id, char out[56]);
void sl_hex(const unsigned char *in, size_t n, char *out /* 2n+1 */);
/* Constant-time comparison of two equal-length byte strings. */
bool sl_ct_equal(const void *a, const void *b, size_t n);

/* ---- files ---------------------------------------------------------------- */
/* Reads a whole file (up to max bytes); returns owned, NUL-terminated. */
int sl_file_read(const char *path, size_t max, char **out, size_t *len, struct sl_err *err);
/* Writes atomically: a temp file in the same folder, fsync, rename. */
int sl_file_write_atomic(const char *path, const void *data, size_t len, struct sl_err *err);
/* mkdir -p */
int sl_mkdirs(const char *path, int mode);
/* Joins dir and name unless name is absolute; returns owned. */
char *sl_path_join(const char *dir, const char *name);

/* ---- secrets ---------------------------------------------------------------
 * A config value "env:NAME" or "file:PATH" names a secret; it is resolved at
 * start. The resolved value is owned by the caller and must never be logged. */
bool sl_secret_is_ref(const char *value);
/* base_dir resolves a relative file: path. Error messages name the
 * reference, never the value. A file's trailing newline is dropped. */
int sl_secret_resolve(const char *ref, const char *base_dir, char **out, struct sl_err *err);

/* ---- logging: JSON lines on stderr ------------------------------------------
 * The level is checked before anything is formatted. Fields are key/value
 * string pairs ending with NULL: sl_log(SL_LOG_INFO, "engine", "run done",
 * "run_id", id, "status", "completed", NULL). */
enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR, SL_LOG_OFF };
extern enum sl_log_level sl_log_min_level;
void sl_log_set_level(enum sl_log_level lvl);
int sl_log_parse_level(const char *name); /* -1 when unknown */
#define sl_log_enabled(lvl) ((lvl) >= sl_log_min_level)
#define sl_log(lvl, component, msg, ...)                                      \
	do {                                                                  \
		if (sl_log_enabled(lvl))                                      \
			sl_log_emit((lvl), (component), (msg), __VA_ARGS__);  \
	} while (0)
void sl_log_emit(enum sl_log_level lvl, const char *component, const char *msg, ...);

/* ---- invariants (Redis serverAssert / Varnish AN) ----------------------------
 * For impossible states only; bad input never asserts. Logs file, line and a
 * backtrace, then aborts. */
#define SL_ASSERT(cond)                                                  \
	do {                                                             \
		if (__builtin_expect(!(cond), 0))                        \
			sl_assert_fail(#cond, __FILE__, __LINE__, __func__); \
	} while (0)
__attribute__((noreturn)) void sl_assert_fail(const char *cond, const char *file, int line,
					      const char *func);

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* Flags every json_dump* adds: reals with 15 significant digits, as SQLite
 * prints them, so a decimal keeps the digits it was written with (0.9, not
 * 0.90000000000000002). Expands where <jansson.h> is included. */
#define SL_JSON_REAL JSON_REAL_PRECISION(15)
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- cron schedules and time zones (cron.c) --------------------------------------- */
/* A compiled 5-field cron expression: "minute hour day-of-month month
 * day-of-week" with *, N, N-M, lists, /STEP, month and day names (jan,
 * mon), 7 = Sunday, Vixie cron's rule that a restricted day-of-month and
 * day-of-week match either; or @hourly, @daily, @weekly, @monthly, @yearly.
 * Returns owned (sl_cron_free) or NULL with the field and fault in err. */
struct sl_cron;
struct sl_cron *sl_cron_parse(const char *expr, char *err, size_t errlen);
void sl_cron_free(struct sl_cron *c);
/* A time zone of the TZ database (tzdata: $TZDIR or /usr/share/zoneinfo),
 * read once; thread-safe, never touches TZ. NULL with err when unknown.
 * sl_tz_parse reads TZif bytes (RFC 8536), NULL when they are not. */
struct sl_tz;
struct sl_tz *sl_tz_load(const char *name, char *err, size_t errlen);
struct sl_tz *sl_tz_parse(const void *data, size_t len);
void sl_tz_free(struct sl_tz *tz);
/* The UTC offset in seconds at instant t_s (tz NULL: UTC). */
int32_t sl_tz_offset(const struct sl_tz *tz, int64_t t_s);
/* The first slot strictly after after_ms, in ms, read on tz's wall clock
 * (NULL: UTC): a wall time that happens twice fires at its first instant,
 * one skipped by a DST jump fires the jump's length later. -1 when the
 * expression never matches (like "0 0 30 2 *"). */
int64_t sl_cron_next(const struct sl_cron *c, const struct sl_tz *tz, int64_t after_ms);

#endif
