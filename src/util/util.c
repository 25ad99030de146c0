/*
 * util.c: errors, diagnostics, buffers, strings, files and secrets.
 * Time, ids, hashing and logging are in their own files of this module.
 */
#include "util/util.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- codes and classes ---------------------------------------------------- */

const char *sl_code_name(int code)
{
	switch (code) {
#define SL_CODE_NAME(name, val, msg) \
	case (val):                  \
		return #name;
		SL_ERRNO_MAP(SL_CODE_NAME)
#undef SL_CODE_NAME
	}
	return "UNKNOWN";
}

const char *sl_code_message(int code)
{
	switch (code) {
#define SL_CODE_MSG(name, val, msg) \
	case (val):                 \
		return msg;
		SL_ERRNO_MAP(SL_CODE_MSG)
#undef SL_CODE_MSG
	}
	return "unknown error";
}

static const char *const class_names[] = {
#define SL_CLASS_STR(name, str) str,
	SL_CLASS_MAP(SL_CLASS_STR)
#undef SL_CLASS_STR
};

const char *sl_class_name(enum sl_class c)
{
	if ((unsigned)c >= SL_CLASS__COUNT)
		return "unknown";
	return class_names[c];
}

int sl_class_parse(const char *name)
{
	for (int i = 0; i < SL_CLASS__COUNT; i++)
		if (name && strcmp(name, class_names[i]) == 0)
			return i;
	return -1;
}

/* ---- the error struct ----------------------------------------------------- */

void sl_err_clear(struct sl_err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->cls = SL_CLASS_NONE;
	e->line = e->col = 0;
	e->http_status = 0;
	e->retry_after_ms = -1;
	e->file[0] = '\0';
	e->msg[0] = '\0';
}

int sl_err_set(struct sl_err *e, int code, enum sl_class cls, const char *fmt, ...)
{
	if (!e)
		return code;
	e->code = code;
	e->cls = cls;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

int sl_err_setloc(struct sl_err *e, int code, const char *file, int line, int col, const char *fmt, ...)
{
	if (!e)
		return code;
	e->code = code;
	e->line = line;
	e->col = col;
	snprintf(e->file, sizeof e->file, "%s", file ? file : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

void sl_err_prefix(struct sl_err *e, const char *fmt, ...)
{
	if (!e)
		return;
	char pre[SL_ERR_MSG_MAX], old[SL_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
}

/* ---- diagnostics ------------------------------------------------------------ */

void sl_diags_add(struct sl_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = sl_xrealloc(d->v, d->cap * sizeof *d->v);
	}
	struct sl_diag *g = &d->v[d->n++];
	g->file = sl_strdup(file ? file : "");
	g->line = line;
	g->col = col;
	va_list ap;
	va_start(ap, fmt);
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_LINE);
	sl_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	g->msg = b.err ? sl_strdup("(message too long)") : sl_buf_detach(&b);
	if (!g->msg)
		g->msg = sl_strdup("");
}

void sl_diags_free(struct sl_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

static int diag_cmp(const void *a, const void *b)
{
	const struct sl_diag *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x < y ? -1 : (x > y); /* stable on the original order */
}

void sl_diags_sort(struct sl_diags *d)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof *d->v, diag_cmp);
}

/* ---- buffers ---------------------------------------------------------------- */

void sl_buf_init(struct sl_buf *b, size_t max)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->err = 0;
}

void sl_buf_free(struct sl_buf *b)
{
	free(b->p);
	sl_buf_init(b, b->max);
}

void sl_buf_reset(struct sl_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

static int buf_grow(struct sl_buf *b, size_t extra)
{
	if (b->err)
		return b->err;
	if (extra > b->max || b->len + extra > b->max) {
		b->err = SL_ETOOBIG;
		return b->err;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->err = SL_ENOMEM;
		return b->err;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int sl_buf_add(struct sl_buf *b, const void *data, size_t len)
{
	if (buf_grow(b, len))
		return b->err;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int sl_buf_adds(struct sl_buf *b, const char *s)
{
	return sl_buf_add(b, s, strlen(s));
}

int sl_buf_addc(struct sl_buf *b, char c)
{
	return sl_buf_add(b, &c, 1);
}

int sl_buf_vprintf(struct sl_buf *b, const char *fmt, va_list ap)
{
	if (b->err)
		return b->err;
	va_list ap2;
	va_copy(ap2, ap);
	char small[256];
	int n = vsnprintf(small, sizeof small, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return b->err = SL_EINVAL;
	if ((size_t)n < sizeof small)
		return sl_buf_add(b, small, (size_t)n);
	if (buf_grow(b, (size_t)n))
		return b->err;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sl_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int sl_buf_add_json_str(struct sl_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sl_buf_addc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': sl_buf_add(b, "\\\"", 2); break;
		case '\\': sl_buf_add(b, "\\\\", 2); break;
		case '\n': sl_buf_add(b, "\\n", 2); break;
		case '\r': sl_buf_add(b, "\\r", 2); break;
		case '\t': sl_buf_add(b, "\\t", 2); break;
		default:
			if (*p < 0x20) {
				char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
				sl_buf_add(b, u, 6);
			} else {
				sl_buf_addc(b, (char)*p);
			}
		}
	}
	return sl_buf_addc(b, '"');
}

char *sl_buf_detach(struct sl_buf *b)
{
	if (b->err) {
		sl_buf_free(b);
		return NULL;
	}
	char *p = b->p ? b->p : sl_strdup("");
	sl_buf_init(b, b->max);
	return p;
}

/* ---- strings ------------------------------------------------------------------ */

static __attribute__((noreturn)) void oom(void)
{
	static const char msg[] = "sluice: out of memory\n";
	ssize_t w = write(2, msg, sizeof msg - 1);
	(void)w;
	abort();
}

void *sl_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *sl_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *sl_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

char *sl_strdup(const char *s)
{
	if (!s)
		return NULL;
	char *p = strdup(s);
	if (!p)
		oom();
	return p;
}

char *sl_strndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom();
	return p;
}

char *sl_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = NULL;
	int n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom();
	return p;
}

bool sl_str_startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool sl_str_endswith(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

size_t sl_edit_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > lb ? la - lb > max : lb - la > max)
		return max + 1;
	if (lb > 64)
		return max + 1; /* names are short; long strings are never "close" */
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0], best = row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = SL_MIN(SL_MIN(row[j - 1] + 1, up + 1), diag + cost);
			row[j] = v;
			diag = up;
			best = SL_MIN(best, v);
		}
		if (best > max)
			return max + 1;
	}
	return SL_MIN(row[lb], max + 1);
}

const char *sl_did_you_mean(const char *word, const char *const *candidates)
{
	size_t len = strlen(word);
	size_t max = len <= 3 ? 1 : len <= 6 ? 2 : 3;
	const char *best = NULL;
	size_t bestd = max + 1;
	for (size_t i = 0; candidates && candidates[i]; i++) {
		size_t d = sl_edit_distance(word, candidates[i], max);
		if (d < bestd) {
			bestd = d;
			best = candidates[i];
		}
	}
	return best;
}

int sl_parse_i64(const char *s, int64_t *out)
{
	if (!s || !*s)
		return SL_EINVAL;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return SL_EINVAL;
	*out = v;
	return 0;
}

/* ---- files ---------------------------------------------------------------------- */

int sl_file_read(const char *path, size_t max, char **out, size_t *len, struct sl_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: %s", path, strerror(errno));
	struct sl_buf b;
	sl_buf_init(&b, max);
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			sl_buf_free(&b);
			return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		if (sl_buf_add(&b, chunk, (size_t)n)) {
			close(fd);
			sl_buf_free(&b);
			return sl_err_set(err, SL_ETOOBIG, SL_CLASS_NONE, "%s: larger than %zu bytes", path, max);
		}
	}
	close(fd);
	if (len)
		*len = b.len;
	*out = sl_buf_detach(&b);
	return 0;
}

int sl_file_write_atomic(const char *path, const void *data, size_t len, struct sl_err *err)
{
	char *tmp = sl_asprintf("%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: %s", path, strerror(e));
	}
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			free(tmp);
			return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: %s", path, strerror(e));
		}
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		free(tmp);
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: %s", path, strerror(e));
	}
	free(tmp);
	return 0;
}

int sl_mkdirs(const char *path, int mode)
{
	char *p = sl_strdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
			free(p);
			return SL_EIO;
		}
		*s = '/';
	}
	int rc = (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) ? SL_EIO : 0;
	free(p);
	return rc;
}

char *sl_path_join(const char *dir, const char *name)
{
	if (name[0] == '/' || !dir || !*dir)
		return sl_strdup(name);
	size_t n = strlen(dir);
	return sl_asprintf("%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", name);
}

/* ---- secrets ----------------------------------------------------------------------- */

bool sl_secret_is_ref(const char *value)
{
	return value && (sl_str_startswith(value, "env:") || sl_str_startswith(value, "file:"));
}

int sl_secret_resolve(const char *ref, const char *base_dir, char **out, struct sl_err *err)
{
	*out = NULL;
	if (sl_str_startswith(ref, "env:")) {
		const char *v = getenv(ref + 4);
		if (!v)
			return sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE,
					  "secret %s: environment variable %s is not set", ref, ref + 4);
		*out = sl_strdup(v);
		return 0;
	}
	if (sl_str_startswith(ref, "file:")) {
		char *path = sl_path_join(base_dir, ref + 5);
		char *data = NULL;
		size_t len = 0;
		struct sl_err e2;
		sl_err_clear(&e2);
		int rc = sl_file_read(path, 64 * 1024, &data, &len, &e2);
		free(path);
		if (rc)
			return sl_err_set(err, rc, SL_CLASS_NONE, "secret %s: cannot read the file", ref);
		while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
			data[--len] = '\0';
		*out = data;
		return 0;
	}
	return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "not a secret reference (want env:NAME or file:PATH)");
}

/* ---- invariants -------------------------------------------------------------------- */

void sl_assert_fail(const char *cond, const char *file, int line, const char *func)
{
	fprintf(stderr, "{\"level\":\"fatal\",\"component\":\"assert\",\"msg\":\"assertion failed\","
			"\"cond\":\"%s\",\"file\":\"%s\",\"line\":%d,\"func\":\"%s\"}\n",
		cond, file, line, func);
	void *frames[64];
	int n = backtrace(frames, 64);
	backtrace_symbols_fd(frames, n, 2);
	abort();
}

void sl_trace_id(const char *correlation_id, char out[33])
{
	const char *c = correlation_id ? correlation_id : "";
	bool hex = strlen(c) == 32;
	for (size_t i = 0; hex && i < 32; i++)
		hex = (c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f');
	if (hex) {
		memcpy(out, c, 33);
		return;
	}
	char h[65];
	sl_sha256_hex(c, strlen(c), h);
	memcpy(out, h, 32);
	out[32] = '\0';
}

void sl_traceparent(const char *correlation_id, char out[56])
{
	char trace[33], span[17];
	unsigned char b[8];
	sl_trace_id(correlation_id, trace);
	sl_random_bytes(b, sizeof b);
	sl_hex(b, sizeof b, span);
	snprintf(out, 56, "00-%s-%s-01", trace, span);
}
