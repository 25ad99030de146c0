/*
 * file.c: the `file` connector type: append rows to a JSONL or CSV file, and
 * read them back after a byte-offset cursor (a poll source).
 *
 * Exactly-once appends. A call that carries an idempotency key writes the
 * key into every row (key_field), and an append whose key is already in the
 * file is skipped. The keys are loaded by scanning the file once, on the
 * first append, then kept in memory. Each append is one write() of all its
 * rows (O_APPEND), then fdatasync when fsync is on, and only then is it
 * acknowledged. So after a kill -9 or a power cut the file holds, at its
 * end, at most one append that was never acknowledged, possibly cut short.
 * The first append after a restart repairs that tail (see scan_file): a cut
 * last line is removed, and so are the complete rows of a multi-row append
 * whose last row is missing, because a retry will write the whole append
 * again and would otherwise double them.
 *
 * To know whether a multi-row append is whole, its rows carry the key as
 * "KEY#i/n" (row i of n). A single row carries the plain key, unless the key
 * itself ends like "#i/n", in which case it becomes "KEY#1/1" so that the
 * suffix is never ambiguous.
 *
 * One process appends to a file at a time (the engine's workers share one
 * connector and its lock); readers may run alongside.
 */
#include "connector/connector.h"
#include "connector/connector_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define FILE_ROW_MAX SL_BUF_MAX_HTTP_BODY    /* one record read back */
#define FILE_APPEND_MAX SL_BUF_MAX_HTTP_BODY /* all rows of one append */
#define FILE_CHUNK (64 * 1024)               /* read size while scanning */
#define FILE_READ_DEFAULT 100                /* rows per read when max is not given */
#define FILE_READ_LIMIT 10000                /* rows per read at most */
#define CSV_COLUMNS_MAX 256
#define FILE_DEFAULT_KEY_FIELD "_idempotency_key"

enum file_format { FILE_JSONL, FILE_CSV };

struct file_conn {
	const char *name; /* the connector's, for logs */
	char *path;       /* resolved against the project folder */
	enum file_format format;
	char **columns;   /* CSV */
	size_t ncolumns;
	int key_col;      /* CSV: index of key_field in columns; -1: no dedupe */
	bool fsync;
	char *key_field;

	pthread_mutex_t mu; /* guards everything below */
	int fd;             /* append descriptor, -1 until the first append */
	dev_t dev;          /* identity of the open file, to notice rotation */
	ino_t ino;
	bool scanned;       /* keys loaded and tail repaired for this fd */
	json_t *keys;       /* set: key -> true, for appends that completed */
	char *header_error; /* CSV: the file's header differs from columns */
};

/* ---- keys with a row suffix ------------------------------------------------------- */

/* Splits "KEY#i/n" into KEY's length, i and n; a key without a well-formed
 * suffix is one row (1/1). */
static void key_split(const char *s, size_t len, size_t *base_len, long *i, long *n)
{
	*base_len = len;
	*i = *n = 1;
	const char *hash = NULL;
	for (size_t k = len; k > 0; k--) {
		if (s[k - 1] == '#') {
			hash = s + k - 1;
			break;
		}
	}
	if (!hash)
		return;
	long a = 0, b = 0;
	const char *p = hash + 1, *end = s + len;
	int da = 0, db = 0;
	while (p < end && *p >= '0' && *p <= '9' && da < 9)
		a = a * 10 + (*p++ - '0'), da++;
	if (p >= end || *p != '/')
		return;
	p++;
	while (p < end && *p >= '0' && *p <= '9' && db < 9)
		b = b * 10 + (*p++ - '0'), db++;
	if (p != end || !da || !db || a < 1 || b < 1 || a > b)
		return;
	*base_len = (size_t)(hash - s);
	*i = a;
	*n = b;
}

/* The key written in row i (1-based) of an append of n rows. */
static char *row_key(const char *key, long i, long n)
{
	size_t bl;
	long a, b;
	key_split(key, strlen(key), &bl, &a, &b);
	if (n > 1 || bl != strlen(key))
		return sl_asprintf("%s#%ld/%ld", key, i, n);
	return sl_strdup(key);
}

/* Follows the rows of multi-row appends through a file: which append is
 * open (its first row seen, its last not yet), and where it started. */
struct batch {
	bool open;
	int64_t start;
	char *base;
	long next, n;
};

enum batch_step {
	BATCH_NONE,     /* the row belongs to no multi-row append */
	BATCH_ABANDON,  /* an open append was cut off by this row (then see the row) */
	BATCH_PART,     /* the row continues the open append */
	BATCH_DONE,     /* the row completes the open append */
};

static void batch_close(struct batch *b)
{
	free(b->base);
	b->base = NULL;
	b->open = false;
}

/* Feeds one row's key (NULL: none). *complete_key is set (borrowed from
 * the batch or key) when an append just completed: the key to remember. */
static enum batch_step batch_feed(struct batch *b, const char *key, int64_t start, char **complete_key)
{
	*complete_key = NULL;
	size_t bl = 0;
	long i = 1, n = 1;
	if (key)
		key_split(key, strlen(key), &bl, &i, &n);
	if (b->open && key && i == b->next && n == b->n && strlen(b->base) == bl && memcmp(b->base, key, bl) == 0) {
		b->next++;
		if (i < n)
			return BATCH_PART;
		*complete_key = sl_strndup(key, bl);
		batch_close(b);
		return BATCH_DONE;
	}
	enum batch_step step = b->open ? BATCH_ABANDON : BATCH_NONE;
	batch_close(b);
	if (key && n > 1 && i == 1) {
		b->open = true;
		b->start = start;
		b->base = sl_strndup(key, bl);
		b->next = 2;
		b->n = n;
	} else if (key && n == 1) {
		*complete_key = sl_strndup(key, bl);
	}
	return step;
}

/* ---- reading records -------------------------------------------------------------- */

/* Reads complete records (a line; for CSV a line outside quotes) from an
 * offset. A last record without its newline is never returned: it may be an
 * append in progress or one cut short. */
struct rec_reader {
	int fd;
	bool csv, in_quotes, too_long;
	char chunk[FILE_CHUNK];
	size_t clen, cpos;
	int64_t next;      /* file offset of chunk[cpos] */
	int64_t rec_start; /* file offset of the record being read */
	struct sl_buf rec; /* the record, without its line end */
};

static void reader_init(struct rec_reader *r, int fd, bool csv, int64_t off)
{
	r->fd = fd;
	r->csv = csv;
	r->in_quotes = r->too_long = false;
	r->clen = r->cpos = 0;
	r->next = r->rec_start = off;
	sl_buf_init(&r->rec, FILE_ROW_MAX);
}

static int reader_fill(struct rec_reader *r, struct sl_err *err)
{
	for (;;) {
		ssize_t n = pread(r->fd, r->chunk, sizeof r->chunk, r->next);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "read: %s", strerror(errno));
		r->clen = (size_t)n;
		r->cpos = 0;
		return n == 0 ? 1 : 0;
	}
}

/* 1: a record is in r->rec (r->too_long: it passed the cap and was cut),
 * [*start, *end) its bytes with the line end; 0: no more complete records;
 * <0: a read error. */
static int reader_next(struct rec_reader *r, int64_t *start, int64_t *end, struct sl_err *err)
{
	sl_buf_reset(&r->rec);
	r->too_long = false;
	r->in_quotes = false;
	r->rec_start = r->next;
	for (;;) {
		if (r->cpos == r->clen) {
			int rc = reader_fill(r, err);
			if (rc)
				return rc > 0 ? 0 : rc;
		}
		const char *p = r->chunk + r->cpos;
		size_t n = r->clen - r->cpos, i = 0;
		bool done = false;
		if (!r->csv) {
			const char *nl = memchr(p, '\n', n);
			i = nl ? (size_t)(nl - p) : n;
			done = nl != NULL;
		} else {
			for (; i < n && !done; i++) {
				if (p[i] == '"')
					r->in_quotes = !r->in_quotes;
				else if (p[i] == '\n' && !r->in_quotes)
					done = true;
			}
			if (done)
				i--; /* i is past the newline */
		}
		sl_buf_add(&r->rec, p, i);
		r->cpos += i + done;
		r->next += (int64_t)(i + done);
		if (!done)
			continue;
		if (r->rec.err)
			r->too_long = true;
		if (r->rec.len && r->rec.p[r->rec.len - 1] == '\r')
			r->rec.p[--r->rec.len] = '\0';
		*start = r->rec_start;
		*end = r->next;
		return 1;
	}
}

static void reader_free(struct rec_reader *r)
{
	sl_buf_free(&r->rec);
}

/* ---- CSV ----------------------------------------------------------------------------- */

struct csv_row {
	char *f[CSV_COLUMNS_MAX];
	size_t n;
};

static void csv_row_free(struct csv_row *row)
{
	for (size_t i = 0; i < row->n; i++)
		free(row->f[i]);
	row->n = 0;
}

/* RFC 4180 fields; lenient about a quote inside an unquoted field. Fields
 * past CSV_COLUMNS_MAX are dropped. */
static void csv_split(const char *s, size_t len, struct csv_row *row)
{
	row->n = 0;
	size_t i = 0;
	struct sl_buf f;
	sl_buf_init(&f, FILE_ROW_MAX);
	for (;;) {
		sl_buf_reset(&f);
		if (i < len && s[i] == '"') {
			for (i++; i < len; i++) {
				if (s[i] == '"' && i + 1 < len && s[i + 1] == '"')
					sl_buf_addc(&f, s[i++]);
				else if (s[i] == '"')
					break;
				else
					sl_buf_addc(&f, s[i]);
			}
			i++; /* the closing quote */
			while (i < len && s[i] != ',')
				sl_buf_addc(&f, s[i++]);
		} else {
			while (i < len && s[i] != ',')
				sl_buf_addc(&f, s[i++]);
		}
		if (row->n < CSV_COLUMNS_MAX)
			row->f[row->n++] = sl_strdup(sl_buf_str(&f));
		if (i >= len)
			break;
		i++; /* the comma */
	}
	sl_buf_free(&f);
}

static void csv_field(struct sl_buf *b, const char *s, size_t n)
{
	bool quote = false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			quote = true;
	if (!quote) {
		sl_buf_add(b, s, n);
		return;
	}
	sl_buf_addc(b, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			sl_buf_addc(b, '"');
		sl_buf_addc(b, s[i]);
	}
	sl_buf_addc(b, '"');
}

static void csv_value(struct sl_buf *b, const json_t *v)
{
	char num[64];
	if (!v)
		return; /* a missing field is an empty cell */
	switch (json_typeof(v)) {
	case JSON_STRING:
		csv_field(b, json_string_value(v), json_string_length(v));
		return;
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(num, sizeof num, "%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(num, sizeof num, "true");
		break;
	case JSON_FALSE:
		snprintf(num, sizeof num, "false");
		break;
	case JSON_NULL:
		return;
	default: {
		char *s = json_dumps(v, JSON_COMPACT | SL_JSON_REAL);
		if (s)
			csv_field(b, s, strlen(s));
		free(s);
		return;
	}
	}
	sl_buf_adds(b, num);
}

static void csv_header_line(const struct file_conn *fc, struct sl_buf *b)
{
	for (size_t i = 0; i < fc->ncolumns; i++) {
		if (i)
			sl_buf_addc(b, ',');
		csv_field(b, fc->columns[i], strlen(fc->columns[i]));
	}
	sl_buf_adds(b, "\r\n");
}

/* ---- config ---------------------------------------------------------------------------- */

static const struct sl_conf_key file_keys[] = {
	{"path", SL_CONF_STRING, true, "the file, relative to the project folder unless absolute"},
	{"format", SL_CONF_STRING, false, "jsonl (default) or csv"},
	{"columns", SL_CONF_ARRAY, false, "csv: the column names, in order (required for csv)"},
	{"fsync", SL_CONF_BOOL, false, "flush each append to disk before it is acknowledged (default true)"},
	{"key_field", SL_CONF_STRING, false, "field (csv: column) holding the idempotency key (default "
					     "_idempotency_key)"},
	{NULL, 0, false, NULL},
};

static const char *const file_builtins[] = {"append", "write", "read", "read", NULL};

static void init_columns(struct file_conn *fc, const json_t *doc, struct sl_conf_ctx *ctx)
{
	const json_t *cols = json_object_get(doc, "columns");
	if (cols && !json_is_array(cols))
		return; /* reported by the key check */
	if (fc->format == FILE_JSONL) {
		if (cols)
			sl_conf_error(ctx, "/columns", "columns applies to format: csv only");
		return;
	}
	if (!cols || json_array_size(cols) == 0) {
		sl_conf_error(ctx, cols ? "/columns" : "", "format: csv needs columns: a list of column names");
		return;
	}
	if (json_array_size(cols) > CSV_COLUMNS_MAX) {
		sl_conf_error(ctx, "/columns", "at most %d columns", CSV_COLUMNS_MAX);
		return;
	}
	fc->columns = sl_xcalloc(json_array_size(cols), sizeof *fc->columns);
	size_t i;
	json_t *v;
	json_array_foreach(cols, i, v) {
		char p[SL_CONF_PTR_MAX];
		snprintf(p, sizeof p, "/columns/%zu", i);
		const char *s = json_string_value(v);
		if (!s || !*s) {
			sl_conf_error(ctx, p, "a column name must be a non-empty string");
			continue;
		}
		for (size_t j = 0; j < fc->ncolumns; j++)
			if (strcmp(fc->columns[j], s) == 0)
				sl_conf_error(ctx, p, "column \"%s\" is listed twice", s);
		fc->columns[fc->ncolumns++] = sl_strdup(s);
	}
}

static int file_init(struct sl_connector *c, struct sl_conf_ctx *ctx)
{
	int before = ctx->nerrors;
	const json_t *doc = c->config;
	struct file_conn *fc = sl_xcalloc(1, sizeof *fc);
	c->priv = fc;
	fc->name = c->name;
	fc->fd = -1;
	fc->key_col = -1;
	pthread_mutex_init(&fc->mu, NULL);
	fc->keys = json_object();
	const char *path = sl_conf_str(doc, "path", "");
	if (!*path && json_is_string(json_object_get(doc, "path")))
		sl_conf_error(ctx, "/path", "path must not be empty");
	fc->path = sl_path_join(ctx->project_dir, path);
	const char *fmt = sl_conf_str(doc, "format", "jsonl");
	if (strcmp(fmt, "jsonl") == 0)
		fc->format = FILE_JSONL;
	else if (strcmp(fmt, "csv") == 0)
		fc->format = FILE_CSV;
	else
		sl_conf_error(ctx, "/format", "unknown format \"%s\" (want jsonl or csv)", fmt);
	fc->fsync = sl_conf_bool(doc, "fsync", true);
	fc->key_field = sl_strdup(sl_conf_str(doc, "key_field", FILE_DEFAULT_KEY_FIELD));
	if (!*fc->key_field)
		sl_conf_error(ctx, "/key_field", "key_field must not be empty");
	init_columns(fc, doc, ctx);
	for (size_t i = 0; i < fc->ncolumns; i++)
		if (strcmp(fc->columns[i], fc->key_field) == 0)
			fc->key_col = (int)i;
	return ctx->nerrors - before;
}

static int file_action_init(struct sl_connector *c, struct sl_action *a, struct sl_conf_ctx *ctx,
			    const char *pointer)
{
	if (strcmp(a->name, "append") != 0 && strcmp(a->name, "read") != 0) {
		sl_conf_error(ctx, pointer, "a file connector has only the actions append and read, not \"%s\"",
			      a->name);
		return 1;
	}
	return 0;
}

static void file_close(struct sl_connector *c)
{
	struct file_conn *fc = c->priv;
	if (!fc)
		return;
	if (fc->fd >= 0)
		close(fc->fd);
	pthread_mutex_destroy(&fc->mu);
	json_decref(fc->keys);
	for (size_t i = 0; i < fc->ncolumns; i++)
		free(fc->columns[i]);
	free(fc->columns);
	free(fc->path);
	free(fc->key_field);
	free(fc->header_error);
	free(fc);
	c->priv = NULL;
}

/* ---- scanning and repair ------------------------------------------------------------------ */

/* The key a record carries, owned, or NULL. key_col: CSV's key column. */
static char *record_key(const struct file_conn *fc, const struct rec_reader *r, int key_col)
{
	if (r->too_long || !r->rec.len)
		return NULL;
	if (fc->format == FILE_CSV) {
		if (key_col < 0)
			return NULL;
		struct csv_row row;
		csv_split(r->rec.p, r->rec.len, &row);
		char *k = (size_t)key_col < row.n && row.f[key_col][0] ? sl_strdup(row.f[key_col]) : NULL;
		csv_row_free(&row);
		return k;
	}
	/* Cheap filter first: most lines of a large file need no parse. */
	if (!memmem(r->rec.p, r->rec.len, fc->key_field, strlen(fc->key_field)))
		return NULL;
	json_t *o = json_loadb(r->rec.p, r->rec.len, 0, NULL);
	const char *k = json_string_value(json_object_get(o, fc->key_field));
	char *out = k && *k ? sl_strdup(k) : NULL;
	json_decref(o);
	return out;
}

static void check_csv_header(struct file_conn *fc, const struct rec_reader *r)
{
	struct csv_row row;
	csv_split(r->rec.p ? r->rec.p : "", r->rec.len, &row);
	bool same = row.n == fc->ncolumns;
	for (size_t i = 0; same && i < row.n; i++)
		same = strcmp(row.f[i], fc->columns[i]) == 0;
	csv_row_free(&row);
	free(fc->header_error);
	fc->header_error = same ? NULL
				: sl_asprintf("the header line of %s does not match columns: (%s) "
					      "- write to a new file or fix columns", fc->path,
					      sl_buf_str(&r->rec));
}

/* Loads the keys of completed appends and returns, in *good_end, where the
 * file's acknowledged content ends: before a cut last line, and before the
 * rows of a multi-row append whose last row never made it. */
static int scan_file(struct file_conn *fc, int fd, int64_t *good_end, struct sl_err *err)
{
	struct rec_reader *r = sl_xmalloc(sizeof *r);
	reader_init(r, fd, fc->format == FILE_CSV, 0);
	struct batch b = {0};
	int64_t start, end;
	int rc;
	bool header = fc->format == FILE_CSV;
	*good_end = 0;
	json_object_clear(fc->keys);
	while ((rc = reader_next(r, &start, &end, err)) == 1) {
		*good_end = end;
		if (header) {
			check_csv_header(fc, r);
			header = false;
			continue;
		}
		char *key = record_key(fc, r, fc->key_col), *done = NULL;
		batch_feed(&b, key, start, &done);
		if (done)
			json_object_set_new_nocheck(fc->keys, done, json_true());
		free(done);
		free(key);
	}
	if (rc == 0 && b.open)
		*good_end = b.start;
	batch_close(&b);
	reader_free(r);
	free(r);
	return rc < 0 ? rc : 0;
}

static int fsync_dir_of(const char *path)
{
	char *copy = sl_strdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int open_for_append(struct file_conn *fc, struct sl_err *err)
{
	char *dir = sl_strdup(fc->path);
	int mk = sl_mkdirs(dirname(dir), 0755);
	free(dir);
	if (mk != 0)
		return sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "%s: cannot create its folder: %s",
				  fc->path, strerror(errno));
	bool created = false;
	int fd = open(fc->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0)
		created = true;
	else if (errno == EEXIST)
		fd = open(fc->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "%s: %s", fc->path, strerror(errno));
	/* A new file's name must survive a crash as well as its rows. */
	if (created && fc->fsync)
		fsync_dir_of(fc->path);
	struct stat st;
	fstat(fd, &st);
	fc->fd = fd;
	fc->dev = st.st_dev;
	fc->ino = st.st_ino;
	fc->scanned = false;
	return 0;
}

/* The scan needs to read: the append descriptor is write-only. */
static int scan_and_repair(struct file_conn *fc, struct sl_err *err)
{
	int rfd = open(fc->path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "%s: %s", fc->path, strerror(errno));
	int wfd = fc->fd;
	int64_t good_end = 0;
	int rc = scan_file(fc, rfd, &good_end, err);
	struct stat st;
	if (rc == 0 && fstat(rfd, &st) == 0 && st.st_size > good_end) {
		/* Nothing after good_end was ever acknowledged: a crash cut it
		 * short, and the retry that follows will write it again. */
		if (ftruncate(wfd, good_end) != 0 || (fc->fsync && fdatasync(wfd) != 0)) {
			rc = sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "%s: repairing the end: %s",
					fc->path, strerror(errno));
		} else {
			char removed[32];
			snprintf(removed, sizeof removed, "%lld", (long long)(st.st_size - good_end));
			sl_log(SL_LOG_WARN, "connector", "removed an unacknowledged partial append at the end of "
			       "the file", "connector", fc->name, "path", fc->path, "bytes", removed, NULL);
		}
	}
	close(rfd);
	if (rc == 0)
		fc->scanned = true;
	return rc;
}

/* Opens on first use, reopens after the file was rotated or removed, and
 * scans once per opened file. Called with fc->mu held. */
static int ensure_ready(struct file_conn *fc, struct sl_err *err)
{
	if (fc->fd >= 0) {
		struct stat st;
		if (stat(fc->path, &st) != 0 || st.st_dev != fc->dev || st.st_ino != fc->ino) {
			close(fc->fd);
			fc->fd = -1;
		}
	}
	if (fc->fd < 0) {
		int rc = open_for_append(fc, err);
		if (rc)
			return rc;
	}
	return fc->scanned ? 0 : scan_and_repair(fc, err);
}

/* ---- append ------------------------------------------------------------------------------ */

static void jsonl_row(const struct file_conn *fc, const json_t *row, const char *key, struct sl_buf *b)
{
	json_t *o = json_object();
	if (key)
		json_object_set_new_nocheck(o, fc->key_field, json_string(key));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)row, k, v) {
		if (!key || strcmp(k, fc->key_field) != 0)
			json_object_set_nocheck(o, k, v);
	}
	/* Compact JSON escapes every newline inside strings: one row, one line. */
	char *s = json_dumps(o, JSON_COMPACT | SL_JSON_REAL);
	json_decref(o);
	if (!s) {
		b->err = SL_ENOMEM;
		return;
	}
	sl_buf_adds(b, s);
	sl_buf_addc(b, '\n');
	free(s);
}

static void csv_row(const struct file_conn *fc, const json_t *row, const char *key, struct sl_buf *b)
{
	for (size_t i = 0; i < fc->ncolumns; i++) {
		if (i)
			sl_buf_addc(b, ',');
		if (key && (int)i == fc->key_col)
			csv_field(b, key, strlen(key));
		else
			csv_value(b, json_object_get(row, fc->columns[i]));
	}
	sl_buf_adds(b, "\r\n");
}

/* All rows of one append, in one buffer, to be written by one write(). */
static int build_rows(const struct file_conn *fc, const json_t *rows, const char *key, struct sl_buf *b,
		      struct sl_err *err)
{
	size_t n = json_array_size(rows), i;
	json_t *row;
	bool keyed = key && (fc->format == FILE_JSONL || fc->key_col >= 0);
	json_array_foreach(rows, i, row) {
		if (!json_is_object(row))
			return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
					  "append: row %zu is %s, not an object", i, json_is_null(row) ? "null" : "not a mapping");
		char *rk = keyed ? row_key(key, (long)i + 1, (long)n) : NULL;
		if (fc->format == FILE_JSONL)
			jsonl_row(fc, row, rk, b);
		else
			csv_row(fc, row, rk, b);
		free(rk);
	}
	if (b->err)
		return sl_err_set(err, SL_ETOOBIG, SL_CLASS_PERMANENT, "append: rows larger than %d bytes in all",
				  FILE_APPEND_MAX);
	return 0;
}

static int write_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t w = writev(fd, iov, iovcnt);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		/* A short write (a full disk, a signal) continues where it stopped. */
		while (iovcnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes header (may be empty) and rows at the end of the file, then flushes.
 * On failure the file is cut back to where it was, so nothing
 * unacknowledged stays behind; if even that fails, the next append scans
 * and repairs again. Called with fc->mu held. */
static int write_rows(struct file_conn *fc, struct sl_buf *header, struct sl_buf *rows, int64_t size,
		      struct sl_err *err)
{
	struct iovec iov[2] = {
		{.iov_base = header->p, .iov_len = header->len},
		{.iov_base = rows->p, .iov_len = rows->len},
	};
	int rc = write_all(fc->fd, header->len ? iov : iov + 1, header->len ? 2 : 1);
	if (rc == 0 && fc->fsync)
		rc = fdatasync(fc->fd);
	if (rc == 0)
		return 0;
	int e = errno;
	if (ftruncate(fc->fd, size) != 0)
		fc->scanned = false;
	return sl_err_set(err, SL_EIO, sl_conn__errno_class(e), "%s: append failed: %s", fc->path, strerror(e));
}

static json_t *append_output(const struct file_conn *fc, size_t n, bool duplicate)
{
	json_t *o = json_pack("{s:I, s:s}", "appended", (json_int_t)n, "path", fc->path);
	if (duplicate)
		json_object_set_new(o, "duplicate", json_true());
	return o;
}

static int append_locked(struct file_conn *fc, const json_t *rows, const char *key, struct sl_buf *b,
			 struct sl_call_result *res, struct sl_err *err)
{
	int rc = ensure_ready(fc, err);
	if (rc)
		return rc;
	if (fc->header_error)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "%s", fc->header_error);
	bool dedupe = key && (fc->format == FILE_JSONL || fc->key_col >= 0);
	if (dedupe && json_object_get(fc->keys, key)) {
		res->output = append_output(fc, 0, true);
		return 0;
	}
	struct stat st;
	if (fstat(fc->fd, &st) != 0)
		return sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "%s: %s", fc->path, strerror(errno));
	struct sl_buf header;
	sl_buf_init(&header, FILE_ROW_MAX);
	if (fc->format == FILE_CSV && st.st_size == 0)
		csv_header_line(fc, &header);
	rc = write_rows(fc, &header, b, (int64_t)st.st_size, err);
	sl_buf_free(&header);
	if (rc)
		return rc;
	if (dedupe)
		json_object_set_new_nocheck(fc->keys, key, json_true());
	res->output = append_output(fc, json_array_size(rows), false);
	return 0;
}

static int file_append(struct file_conn *fc, const struct sl_call *call, struct sl_call_result *res,
		       struct sl_err *err)
{
	const json_t *in = call->input;
	if (!json_is_object(in) && !json_is_array(in))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
				  "append needs an object or a list of objects as input");
	if (call->idempotency_key && !*call->idempotency_key)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "the idempotency key is empty");
	json_t *rows = json_is_array(in) ? json_incref((json_t *)in) : json_pack("[O]", in);
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		res->output = append_output(fc, 0, false);
		return 0;
	}
	/* Rows are encoded before taking the lock: only the write is serial. */
	struct sl_buf b;
	sl_buf_init(&b, FILE_APPEND_MAX);
	int rc = build_rows(fc, rows, call->idempotency_key, &b, err);
	if (rc == 0) {
		pthread_mutex_lock(&fc->mu);
		rc = append_locked(fc, rows, call->idempotency_key, &b, res, err);
		pthread_mutex_unlock(&fc->mu);
	}
	sl_buf_free(&b);
	json_decref(rows);
	return rc;
}

/* ---- read ----------------------------------------------------------------------------------- */

/* What a read collects: rows handed out, and rows of a multi-row append held
 * back until its last row shows it is whole. */
struct read_state {
	json_t *out;
	json_t *pending;
	int64_t cursor;       /* after the last row handed out (or skipped) */
	int64_t pending_end;  /* after the last pending row */
	struct batch b;
};

static json_t *csv_record_object(const struct csv_row *header, const struct rec_reader *r)
{
	struct csv_row row;
	csv_split(r->rec.p, r->rec.len, &row);
	json_t *o = json_object();
	for (size_t i = 0; i < header->n; i++) {
		json_t *v = i < row.n ? json_string(row.f[i]) : json_null();
		json_object_set_new(o, header->f[i], v ? v : json_null());
	}
	csv_row_free(&row);
	return o;
}

static json_t *record_value(const struct file_conn *fc, const struct csv_row *header,
			    const struct rec_reader *r, int64_t start)
{
	if (r->too_long || r->rec.len == 0)
		return NULL;
	json_t *v = fc->format == FILE_CSV ? csv_record_object(header, r)
					    : json_loadb(r->rec.p, r->rec.len, JSON_DECODE_ANY, NULL);
	if (!v) {
		char off[32];
		snprintf(off, sizeof off, "%lld", (long long)start);
		sl_log(SL_LOG_WARN, "connector", "skipped a line that is not JSON", "connector", fc->name, "path",
		       fc->path, "offset", off, NULL);
	}
	return v;
}

static void read_commit_pending(struct read_state *s)
{
	json_array_extend(s->out, s->pending);
	json_array_clear(s->pending);
	s->cursor = s->pending_end;
}

/* Takes in one record (value NULL: a line that is skipped, but passed over). */
static void read_feed(struct read_state *s, json_t *value, const char *key, int64_t start, int64_t end)
{
	char *done = NULL;
	enum batch_step step = batch_feed(&s->b, key, start, &done);
	free(done);
	if (step == BATCH_ABANDON)
		read_commit_pending(s); /* cut off mid-file: it will never be completed or removed */
	if (step == BATCH_PART || step == BATCH_DONE || s->b.open) {
		/* Part of a multi-row append (this row may start it). */
		if (value)
			json_array_append(s->pending, value);
		s->pending_end = end;
		if (step == BATCH_DONE)
			read_commit_pending(s);
		return;
	}
	if (value)
		json_array_append(s->out, value);
	s->cursor = end;
}

static char *row_key_of(const struct file_conn *fc, const json_t *value)
{
	const char *k = json_string_value(json_object_get(value, fc->key_field));
	return k && *k ? sl_strdup(k) : NULL;
}

static int read_header(const struct file_conn *fc, int fd, struct csv_row *header, int64_t *header_end,
		       struct sl_err *err)
{
	struct rec_reader *r = sl_xmalloc(sizeof *r);
	reader_init(r, fd, true, 0);
	int64_t start;
	int rc = reader_next(r, &start, header_end, err);
	if (rc == 1)
		csv_split(r->rec.p ? r->rec.p : "", r->rec.len, header);
	reader_free(r);
	free(r);
	return rc;
}

static int read_records(const struct file_conn *fc, int fd, int64_t from, size_t max, struct read_state *s,
			struct sl_err *err)
{
	struct csv_row header = {.n = 0};
	if (fc->format == FILE_CSV) {
		int64_t hend = 0;
		int rc = read_header(fc, fd, &header, &hend, err);
		if (rc <= 0)
			return rc; /* no complete header yet: nothing to read */
		if (from < hend)
			from = hend;
	}
	s->cursor = from;
	struct rec_reader *r = sl_xmalloc(sizeof *r);
	reader_init(r, fd, fc->format == FILE_CSV, from);
	int64_t start, end;
	int rc = 0;
	while ((json_array_size(s->out) < max || s->b.open) && (rc = reader_next(r, &start, &end, err)) == 1) {
		json_t *v = record_value(fc, &header, r, start);
		char *key = v ? row_key_of(fc, v) : NULL;
		read_feed(s, v, key, start, end);
		free(key);
		json_decref(v);
	}
	rc = rc < 0 ? rc : 0;
	reader_free(r);
	free(r);
	csv_row_free(&header);
	return rc;
}

static int parse_cursor(const char *cursor, int64_t *out, struct sl_err *err)
{
	*out = 0;
	if (!cursor || !*cursor)
		return 0;
	if (sl_parse_i64(cursor, out) != 0 || *out < 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
				  "bad cursor \"%.40s\": want a byte offset (a decimal number)", cursor);
	return 0;
}

/* Rows after cursor, at most max (a multi-row append is never split, so a
 * read can exceed max by the rest of one append). */
static int file_read(struct file_conn *fc, const char *cursor, size_t max, json_t **records, char **cursor_out,
		     struct sl_err *err)
{
	int64_t from;
	int rc = parse_cursor(cursor, &from, err);
	if (rc)
		return rc;
	max = max == 0 ? FILE_READ_DEFAULT : SL_MIN(max, (size_t)FILE_READ_LIMIT);
	struct read_state s = {.out = json_array(), .pending = json_array(), .cursor = from};
	int fd = open(fc->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		rc = sl_err_set(err, SL_EIO, sl_conn__errno_class(errno), "%s: %s", fc->path, strerror(errno));
	struct stat st;
	if (rc == 0 && fd >= 0 && fstat(fd, &st) == 0 && from > st.st_size)
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT,
				"cursor %lld is past the end of %s (%lld bytes): was the file truncated or replaced?",
				(long long)from, fc->path, (long long)st.st_size);
	if (rc == 0 && fd >= 0)
		rc = read_records(fc, fd, from, max, &s, err);
	if (fd >= 0)
		close(fd);
	batch_close(&s.b);
	json_decref(s.pending);
	if (rc) {
		json_decref(s.out);
		return rc;
	}
	*records = s.out;
	*cursor_out = sl_asprintf("%lld", (long long)s.cursor);
	return 0;
}

static int file_read_call(struct file_conn *fc, const struct sl_call *call, struct sl_call_result *res,
			  struct sl_err *err)
{
	const json_t *in = call->input;
	if (in && !json_is_object(in) && !json_is_null(in))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "read takes {cursor, max} or nothing as input");
	const json_t *jc = json_object_get(in, "cursor");
	char num[32];
	const char *cursor = json_string_value(jc);
	if (json_is_integer(jc)) {
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(jc));
		cursor = num;
	}
	json_int_t max = json_integer_value(json_object_get(in, "max"));
	json_t *records = NULL;
	char *next = NULL;
	int rc = file_read(fc, cursor, max > 0 ? (size_t)max : 0, &records, &next, err);
	if (rc)
		return rc;
	res->output = json_pack("{s:o, s:s}", "records", records, "cursor", next);
	free(next);
	return 0;
}

static int file_call(struct sl_connector *c, const struct sl_action *a, const struct sl_call *call,
		     struct sl_call_result *res, struct sl_err *err)
{
	struct file_conn *fc = c->priv;
	if (strcmp(a->name, "append") == 0)
		return file_append(fc, call, res, err);
	if (strcmp(a->name, "read") == 0)
		return file_read_call(fc, call, res, err);
	return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "file connectors have no action %s", a->name);
}

static int file_poll(struct sl_connector *c, const struct sl_action *a, const char *cursor, size_t max,
		     struct sl_poll_result *res, struct sl_err *err)
{
	if (strcmp(a->name, "read") != 0)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_PERMANENT, "only %s.read can be polled, not %s", c->name,
				  a->name);
	return file_read(c->priv, cursor, max, &res->records, &res->cursor, err);
}

const struct sl_connector_type sl_conn__file_type = {
	.name = "file",
	.description = "append rows to a JSONL or CSV file exactly once; read them back after a cursor",
	.keys = file_keys,
	.action_keys = NULL,
	.builtin_actions = file_builtins,
	.init_fn = file_init,
	.action_init_fn = file_action_init,
	.call_fn = file_call,
	.poll_fn = file_poll,
	.action_free_fn = NULL,
	.close_fn = file_close,
};
