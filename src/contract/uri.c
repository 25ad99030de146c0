/*
 * Just enough RFC 3986 for "$id" and "$ref": split a URI reference into its
 * five parts, resolve it against a base (§5.2.2), remove dot segments
 * (§5.2.4). No normalisation beyond that: ids are compared as written, which
 * is what the JSON Schema specification asks of implementations.
 */
#include <stdlib.h>
#include <string.h>

#include "contract/contract_int.h"

struct part {
	const char *p;
	size_t n;
	bool set; /* "?" with an empty query differs from no query */
};
struct uri {
	struct part scheme, auth, path, query, frag;
};

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of the scheme (without ':'), or 0 when s has none. */
static size_t scheme_len(const char *s)
{
	if (!is_alpha(s[0]))
		return 0;
	size_t i = 1;
	while (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	return s[i] == ':' ? i : 0;
}

bool slc_uri_has_scheme(const char *s)
{
	return scheme_len(s) > 0;
}

static void uri_parse(const char *s, struct uri *u)
{
	memset(u, 0, sizeof(*u));
	size_t sl = scheme_len(s);
	if (sl) {
		u->scheme = (struct part){s, sl, true};
		s += sl + 1;
	}
	if (s[0] == '/' && s[1] == '/') {
		s += 2;
		size_t n = strcspn(s, "/?#");
		u->auth = (struct part){s, n, true};
		s += n;
	}
	size_t n = strcspn(s, "?#");
	u->path = (struct part){s, n, true};
	s += n;
	if (*s == '?') {
		s++;
		n = strcspn(s, "#");
		u->query = (struct part){s, n, true};
		s += n;
	}
	if (*s == '#') {
		s++;
		u->frag = (struct part){s, strlen(s), true};
	}
}

/* RFC 3986 §5.2.4, appended to out. */
static void pop_segment(struct sl_buf *out, size_t start)
{
	while (out->len > start && out->p[out->len - 1] != '/')
		out->len--;
	if (out->len > start)
		out->len--;
	if (out->p)
		out->p[out->len] = '\0';
}

static void remove_dots(const char *in, size_t n, struct sl_buf *out)
{
	char *buf = sl_strndup(in, n);
	char *p = buf;
	size_t start = out->len;
	while (*p) {
		if (strncmp(p, "../", 3) == 0) {
			p += 3;
		} else if (strncmp(p, "./", 2) == 0) {
			p += 2;
		} else if (strncmp(p, "/./", 3) == 0) {
			p += 2; /* now at the second "/" */
		} else if (strcmp(p, "/.") == 0) {
			p[1] = '\0';
		} else if (strncmp(p, "/../", 4) == 0) {
			p += 3;
			pop_segment(out, start);
		} else if (strcmp(p, "/..") == 0) {
			p += 2;
			*p = '/';
			pop_segment(out, start);
		} else if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0) {
			break;
		} else {
			/* move the first segment, with its leading "/" if any */
			size_t k = (*p == '/') ? 1 : 0;
			k += strcspn(p + k, "/");
			sl_buf_add(out, p, k);
			p += k;
		}
	}
	free(buf);
}

static void add_part(struct sl_buf *b, const char *pre, const struct part *pt)
{
	if (!pt->set)
		return;
	sl_buf_adds(b, pre);
	sl_buf_add(b, pt->p, pt->n);
}

char *slc_uri_resolve(const char *base, const char *ref)
{
	struct uri b, r;
	uri_parse(base ? base : "", &b);
	uri_parse(ref, &r);
	struct sl_buf out;
	sl_buf_init(&out, SL_BUF_MAX_FILE);

	const struct part *scheme = r.scheme.set ? &r.scheme : &b.scheme;
	if (scheme->set) {
		sl_buf_add(&out, scheme->p, scheme->n);
		sl_buf_addc(&out, ':');
	}
	if (r.scheme.set || r.auth.set) {
		add_part(&out, "//", &r.auth);
		remove_dots(r.path.p, r.path.n, &out);
		add_part(&out, "?", &r.query);
	} else {
		add_part(&out, "//", &b.auth);
		if (r.path.n == 0) {
			sl_buf_add(&out, b.path.p, b.path.n);
			add_part(&out, "?", r.query.set ? &r.query : &b.query);
		} else {
			struct sl_buf merged;
			sl_buf_init(&merged, SL_BUF_MAX_FILE);
			if (r.path.p[0] == '/') {
				sl_buf_add(&merged, r.path.p, r.path.n);
			} else if (b.auth.set && b.path.n == 0) {
				sl_buf_addc(&merged, '/');
				sl_buf_add(&merged, r.path.p, r.path.n);
			} else {
				size_t keep = b.path.n;
				while (keep > 0 && b.path.p[keep - 1] != '/')
					keep--;
				sl_buf_add(&merged, b.path.p, keep);
				sl_buf_add(&merged, r.path.p, r.path.n);
			}
			remove_dots(sl_buf_str(&merged), merged.len, &out);
			sl_buf_free(&merged);
			add_part(&out, "?", &r.query);
		}
	}
	add_part(&out, "#", &r.frag);
	char *s = sl_buf_detach(&out);
	return s ? s : sl_strdup(ref); /* only when past SL_BUF_MAX_FILE */
}

char *slc_uri_strip_fragment(const char *uri)
{
	return sl_strndup(uri, strcspn(uri, "#"));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *slc_pct_decode(const char *s, size_t n, size_t *outlen)
{
	char *out = sl_xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}
