/*
 * diag.c: diagnostics printed the way jq's locfile.c does: the position, the
 * message, the source line, and a caret under the column.
 *
 *   workflows/a.yaml:12:5: error: unknown key 'wehn' in step (did you mean 'when'?)
 *      12 |     wehn: '.x == 1'
 *         |     ^
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"

/* A longer source line is cut: it is shown for orientation only. */
#define SHOW_LINE_MAX 400

#define C_BOLD "\033[1m"
#define C_RED "\033[1;31m"
#define C_GREEN "\033[1;32m"
#define C_RESET "\033[0m"

/* The last file read, so that many errors in one file read it once. */
struct src_cache {
	char *path;
	char *text;
};

static const char *cache_get(struct src_cache *c, const char *base_dir, const char *file)
{
	if (c->path && strcmp(c->path, file) == 0)
		return c->text;
	free(c->path);
	free(c->text);
	c->path = sl_strdup(file);
	c->text = NULL;
	/* Config diagnostics carry the path as the user gave it (DIR/...);
	 * others may be relative to base_dir. Try both. */
	char *joined = base_dir && *base_dir && file[0] != '/' ? sl_path_join(base_dir, file) : NULL;
	size_t len;
	if (!joined || sl_file_read(joined, CONF_FILE_MAX, &c->text, &len, NULL) != 0)
		if (sl_file_read(file, CONF_FILE_MAX, &c->text, &len, NULL) != 0)
			c->text = NULL;
	free(joined);
	return c->text;
}

/* Copies line `line` (1-based) of text into out, without its newline. */
static bool source_line(const char *text, int line, char *out, size_t cap)
{
	const char *p = text;
	for (int l = 1; l < line && p; l++) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (!p || (!*p && line > 1))
		return false;
	size_t n = strcspn(p, "\r\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

static bool secret_key(const char *k, size_t n)
{
	static const char *const words[] = {"secret", "password", "passwd", "token", "api_key", "apikey", NULL};
	char low[64];
	if (n >= sizeof low)
		return false;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)k[i]);
	low[n] = '\0';
	for (size_t i = 0; words[i]; i++)
		if (strstr(low, words[i]))
			return true;
	return false;
}

/* A diagnostic must never show a secret, and the line it points at may be
 * `hmac_secret: s3cr3t` typed in by mistake: the value of a key that names
 * a secret is shown as stars unless it is a reference (env:, file:). Stars
 * keep the columns, so the caret stays right. */
static void mask_secrets(char *s)
{
	for (char *p = s; *p; p++) {
		if (!(isalnum((unsigned char)*p) || *p == '_') || (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
			continue;
		char *k = p;
		while (isalnum((unsigned char)*p) || *p == '_' || *p == '-')
			p++;
		size_t klen = (size_t)(p - k);
		char *q = p;
		if (*q == '"' || *q == '\'')
			q++;
		while (*q == ' ')
			q++;
		if (*q != ':' || !secret_key(k, klen)) {
			p--;
			continue;
		}
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		char *v = q + (*q == '"' || *q == '\'');
		if (sl_str_startswith(v, "env:") || sl_str_startswith(v, "file:")) {
			p--;
			continue;
		}
		for (; *q && *q != ',' && *q != '}' && *q != '#'; q++)
			if (*q != ' ' && *q != '"' && *q != '\'')
				*q = '*';
		p = q - 1;
		if (!*q)
			break;
	}
}

/* A URL's password (scheme://user:PASSWORD@host), typed where a connector
 * wants a reference, is starred too. */
static void mask_url_passwords(char *s)
{
	for (char *p = strstr(s, "://"); p; p = strstr(p, "://")) {
		p += 3;
		char *end = p + strcspn(p, "/@ \t\"',}");
		if (*end != '@')
			continue;
		char *colon = memchr(p, ':', (size_t)(end - p));
		for (char *q = colon ? colon + 1 : end; q < end; q++)
			*q = '*';
		p = end;
	}
}

static void print_caret(FILE *f, const char *line, int col, int width, bool color)
{
	fprintf(f, "%*s | ", width, "");
	/* Columns count characters: step over UTF-8 continuation bytes; tabs
	 * are copied so the caret lines up under them. */
	int c = 1;
	for (const unsigned char *p = (const unsigned char *)line; *p && c < col; p++) {
		if ((*p & 0xC0) == 0x80)
			continue;
		fputc(*p == '\t' ? '\t' : ' ', f);
		c++;
	}
	fprintf(f, "%s^%s\n", color ? C_GREEN : "", color ? C_RESET : "");
}

static void print_one(FILE *f, const struct sl_diag *g, struct src_cache *cache, const char *base_dir, bool color,
		      const char *level)
{
	const char *b = color ? C_BOLD : "", *r = color ? C_RED : "", *z = color ? C_RESET : "";
	if (!g->file[0])
		fprintf(f, "%s%s:%s %s\n", r, level, z, g->msg);
	else if (g->line <= 0)
		fprintf(f, "%s%s:%s %s%s:%s %s\n", b, g->file, z, r, level, z, g->msg);
	else if (g->col <= 0)
		fprintf(f, "%s%s:%d:%s %s%s:%s %s\n", b, g->file, g->line, z, r, level, z, g->msg);
	else
		fprintf(f, "%s%s:%d:%d:%s %s%s:%s %s\n", b, g->file, g->line, g->col, z, r, level, z, g->msg);
	if (!g->file[0] || g->line <= 0)
		return;
	const char *text = cache_get(cache, base_dir, g->file);
	char line[SHOW_LINE_MAX + 1];
	if (!text || !source_line(text, g->line, line, sizeof line))
		return;
	mask_secrets(line);
	mask_url_passwords(line);
	char num[16];
	int width = snprintf(num, sizeof num, "%d", g->line);
	fprintf(f, " %s | %s\n", num, line);
	if (g->col > 0)
		print_caret(f, line, g->col, width + 1, color);
}

void sl_diags_print(FILE *f, const struct sl_diags *d, const char *base_dir, bool color)
{
	sl_diags_print_level(f, d, base_dir, color, "error");
}

void sl_diags_print_level(FILE *f, const struct sl_diags *d, const char *base_dir, bool color, const char *level)
{
	struct src_cache cache = {0};
	for (size_t i = 0; d && i < d->n; i++)
		print_one(f, &d->v[i], &cache, base_dir, color, level);
	free(cache.path);
	free(cache.text);
}
