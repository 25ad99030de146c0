/*
 * refs.c: a small jq tokenizer that finds the field accesses reading the
 * run context itself (`.input`, `.ticket.subject`), so that the config
 * loader can check that a step only reads `.input` and earlier steps.
 *
 * Not a parser: it tracks, per bracket level ("frame"), whether `.` is still
 * the run context. The rules are chosen so that valid jq never yields a
 * false reference; where jq's grammar is subtle the tokenizer gives up on
 * the frame (treats `.` as something else) rather than guess. See
 * docs/internals/expr.md.
 */
#include <stdbool.h>
#include <string.h>

#include "expr/expr.h"
#include "expr/expr_int.h"

/* Deeper nesting than this is not written by hand; the scan stops there. */
#define SCAN_MAX_DEPTH 256
/* Longer field names are not step ids (ids are short identifiers). */
#define SCAN_NAME_MAX 256

enum frame_kind { FR_TOP, FR_PAREN, FR_CALL, FR_BRACKET, FR_BRACE, FR_INTERP, FR_DEF, FR_IF };

struct frame {
	enum frame_kind kind;
	bool root;       /* `.` is still the run context here */
	bool init_root;  /* root when the frame opened: an object pair or if-branch restarts there */
	bool as_pending; /* after `as`: a `(` before the next `|` is a reduce/foreach body */
};

/* What the previous token was, for "does this `.name` continue a path" and
 * "is this `(` a call". */
enum prev { PREV_OTHER, PREV_TERM, PREV_IDENT, PREV_VAR };

struct scan {
	const char *s;
	size_t i;
	struct frame st[SCAN_MAX_DEPTH];
	int depth; /* index of the top frame */
	enum prev prev;
	bool after_catch; /* the token right after `catch` sees the error, not the context */
	bool stop;
	const struct expr_scan_cb *cb;
};

static const char *const keywords[] = {"if",  "then",    "elif", "else",  "end",     "and",   "or",
				       "not", "try",     "catch", "reduce", "foreach", "def",  "as",
				       "label", "import", "include", "__loc__", NULL};

static bool is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static struct frame *top(struct scan *sc)
{
	return &sc->st[sc->depth];
}

static void push(struct scan *sc, enum frame_kind kind, bool root)
{
	if (sc->depth + 1 >= SCAN_MAX_DEPTH) {
		sc->stop = true;
		return;
	}
	struct frame *f = &sc->st[++sc->depth];
	f->kind = kind;
	f->root = f->init_root = root;
	f->as_pending = false;
}

/* Pops frames up to and including the nearest one of a kind in mask; an
 * unmatched closer pops nothing. Returns the kind popped, or -1. */
static int pop_to(struct scan *sc, unsigned mask)
{
	int d = sc->depth;
	while (d > 0 && !(mask & (1u << sc->st[d].kind)))
		d--;
	if (d == 0)
		return -1;
	int kind = (int)sc->st[d].kind;
	sc->depth = d - 1;
	return kind;
}

static void skip_space(struct scan *sc)
{
	for (;;) {
		char c = sc->s[sc->i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			sc->i++;
		} else if (c == '#') {
			while (sc->s[sc->i] && sc->s[sc->i] != '\n')
				sc->i++;
		} else {
			return;
		}
	}
}

static void report(struct scan *sc, const char *name, size_t off)
{
	if (sc->cb->ref_fn)
		sc->cb->ref_fn(sc->cb->ud, name, off);
}

/* A field at `off` starts a path when the previous token does not end a
 * term (`.a.b`, `$x.b`, `f(x).b`, `.a?.b` continue one). */
static void field(struct scan *sc, const char *name, size_t off, bool after_catch)
{
	if (sc->prev == PREV_OTHER && top(sc)->root && !after_catch)
		report(sc, name, off);
	sc->prev = PREV_TERM;
}

/* Scans string content from sc->i (after `"` or after an interpolation's
 * `)`) to the closing quote, or to a `\(`, which opens a frame in which the
 * code inside inherits `.`. */
static void string_body(struct scan *sc)
{
	for (;;) {
		char c = sc->s[sc->i];
		if (!c)
			return;
		if (c == '"') {
			sc->i++;
			sc->prev = PREV_TERM;
			return;
		}
		if (c == '\\') {
			if (sc->s[sc->i + 1] == '(') {
				sc->i += 2;
				push(sc, FR_INTERP, top(sc)->root);
				sc->prev = PREV_OTHER;
				return;
			}
			if (!sc->s[sc->i + 1])
				return;
			sc->i += 2;
			continue;
		}
		sc->i++;
	}
}

static void number(struct scan *sc)
{
	while (is_digit(sc->s[sc->i]) || sc->s[sc->i] == '.')
		sc->i++;
	if (sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E') {
		size_t j = sc->i + 1;
		if (sc->s[j] == '+' || sc->s[j] == '-')
			j++;
		if (is_digit(sc->s[j])) {
			sc->i = j;
			while (is_digit(sc->s[sc->i]))
				sc->i++;
		}
	}
	sc->prev = PREV_TERM;
}

/* `."name"` without interpolation is a field like `.name`. Returns false
 * (consuming nothing) when the string interpolates: then `.` is a term and
 * the string is scanned as code. */
static bool quoted_field(struct scan *sc, bool after_catch)
{
	size_t off = sc->i, j = sc->i + 2, n = 0;
	char name[SCAN_NAME_MAX];
	for (;;) {
		char c = sc->s[j];
		if (!c)
			return false;
		if (c == '"')
			break;
		if (c == '\\') {
			char e = sc->s[j + 1];
			if (e == '(' || !e)
				return false;
			c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
			j++;
		}
		if (n + 1 < sizeof name)
			name[n++] = c;
		j++;
	}
	name[n] = '\0';
	sc->i = j + 1;
	field(sc, name, off, after_catch);
	return true;
}

static void dot(struct scan *sc, bool after_catch)
{
	size_t off = sc->i;
	char n = sc->s[sc->i + 1];
	if (n == '.') { /* `..` */
		sc->i += 2;
		sc->prev = PREV_TERM;
		return;
	}
	if (is_digit(n)) { /* `.5` */
		number(sc);
		return;
	}
	if (is_ident_start(n)) {
		size_t start = ++sc->i;
		while (is_ident_char(sc->s[sc->i]))
			sc->i++;
		char name[SCAN_NAME_MAX];
		size_t len = SL_MIN(sc->i - start, sizeof name - 1);
		memcpy(name, sc->s + start, len);
		name[len] = '\0';
		field(sc, name, off, after_catch);
		return;
	}
	if (n == '"' && quoted_field(sc, after_catch))
		return;
	sc->i++; /* `.` itself */
	sc->prev = PREV_TERM;
}

static bool is_keyword(const char *w, size_t len)
{
	for (size_t k = 0; keywords[k]; k++)
		if (strlen(keywords[k]) == len && memcmp(keywords[k], w, len) == 0)
			return true;
	return false;
}

static bool word_is(const char *w, size_t len, const char *kw)
{
	return strlen(kw) == len && memcmp(w, kw, len) == 0;
}

static void keyword(struct scan *sc, const char *w, size_t len, size_t off)
{
	if (sc->cb->keyword_fn)
		sc->cb->keyword_fn(sc->cb->ud, w, len, off);
	struct frame *f = top(sc);
	sc->prev = PREV_OTHER;
	if (word_is(w, len, "if")) {
		push(sc, FR_IF, f->root);
	} else if (word_is(w, len, "then") || word_is(w, len, "elif") || word_is(w, len, "else")) {
		/* each branch and the next condition see the `.` the `if` saw */
		if (f->kind == FR_IF) {
			f->root = f->init_root;
			f->as_pending = false;
		}
	} else if (word_is(w, len, "end")) {
		pop_to(sc, 1u << FR_IF);
		sc->prev = PREV_TERM;
	} else if (word_is(w, len, "def")) {
		push(sc, FR_DEF, false);
	} else if (word_is(w, len, "as")) {
		f->as_pending = true;
	} else if (word_is(w, len, "catch")) {
		sc->after_catch = true;
	} else if (word_is(w, len, "not") || word_is(w, len, "__loc__")) {
		sc->prev = PREV_TERM; /* `not` is a function of no arguments */
	}
}

static void word(struct scan *sc)
{
	size_t off = sc->i;
	for (;;) { /* module-qualified names: a::b */
		while (is_ident_char(sc->s[sc->i]))
			sc->i++;
		if (sc->s[sc->i] == ':' && sc->s[sc->i + 1] == ':' && is_ident_start(sc->s[sc->i + 2]))
			sc->i += 2;
		else
			break;
	}
	const char *w = sc->s + off;
	size_t len = sc->i - off;
	size_t j = sc->i;
	while (sc->s[j] == ' ' || sc->s[j] == '\t' || sc->s[j] == '\n' || sc->s[j] == '\r')
		j++;
	if (sc->s[j] == ':' && sc->s[j + 1] != ':') { /* an object key or a def's name: {if: 1} */
		sc->prev = PREV_TERM;
		return;
	}
	if (is_keyword(w, len)) {
		keyword(sc, w, len, off);
		return;
	}
	sc->prev = PREV_IDENT;
}

static void variable(struct scan *sc)
{
	size_t off = sc->i++;
	size_t start = sc->i;
	while (is_ident_char(sc->s[sc->i]))
		sc->i++;
	if (sc->i == start) {
		sc->prev = PREV_OTHER;
		return;
	}
	if (sc->cb->var_fn)
		sc->cb->var_fn(sc->cb->ud, sc->s + start, sc->i - start, off);
	sc->prev = PREV_VAR;
}

/* `f(`, `$x (` (reduce/foreach), `as [$a] (` and `catch (` open a frame
 * where `.` is no longer the context; other parentheses inherit it. */
static void open_paren(struct scan *sc, bool after_catch)
{
	struct frame *f = top(sc);
	bool call = sc->prev == PREV_IDENT || sc->prev == PREV_VAR || after_catch || f->as_pending;
	f->as_pending = false;
	sc->i++;
	push(sc, call ? FR_CALL : FR_PAREN, call ? false : f->root);
	sc->prev = PREV_OTHER;
}

static void close_paren(struct scan *sc)
{
	sc->i++;
	int kind = pop_to(sc, 1u << FR_PAREN | 1u << FR_CALL | 1u << FR_INTERP);
	if (kind == FR_INTERP)
		string_body(sc);
	else
		sc->prev = PREV_TERM;
}

static void punct(struct scan *sc)
{
	struct frame *f = top(sc);
	char c = sc->s[sc->i];
	char n = sc->s[sc->i + 1];
	sc->i++;
	sc->prev = PREV_OTHER;
	switch (c) {
	case '[': push(sc, FR_BRACKET, f->root); break;
	case '{': push(sc, FR_BRACE, f->root); break;
	case ']':
		pop_to(sc, 1u << FR_BRACKET);
		sc->prev = PREV_TERM;
		break;
	case '}':
		pop_to(sc, 1u << FR_BRACE);
		sc->prev = PREV_TERM;
		break;
	case '|': /* `|` and `|=`: the right side gets another `.` */
		if (n == '=')
			sc->i++;
		f->root = false;
		f->as_pending = false;
		break;
	case ',': /* the next key: value pair of an object sees the object's `.` */
		if (f->kind == FR_BRACE)
			f->root = f->init_root;
		break;
	case ';':
		if (f->kind == FR_DEF)
			pop_to(sc, 1u << FR_DEF);
		break;
	case '?':
		if (n == '/' && sc->s[sc->i + 1] == '/')
			sc->i += 2; /* ?// */
		else
			sc->prev = PREV_TERM;
		break;
	case '@': /* a format, @base64 or @json "..." */
		while (is_ident_char(sc->s[sc->i]))
			sc->i++;
		sc->prev = PREV_TERM;
		break;
	default: break;
	}
}

void expr_scan(const char *src, const struct expr_scan_cb *cb)
{
	struct scan sc;
	memset(&sc, 0, sizeof sc);
	sc.s = src ? src : "";
	sc.cb = cb;
	sc.st[0].kind = FR_TOP;
	sc.st[0].root = sc.st[0].init_root = true;
	while (!sc.stop) {
		skip_space(&sc);
		char c = sc.s[sc.i];
		if (!c)
			break;
		bool after_catch = sc.after_catch;
		sc.after_catch = false;
		if (c == '"') {
			sc.i++;
			string_body(&sc);
		} else if (c == '.') {
			dot(&sc, after_catch);
		} else if (is_digit(c)) {
			number(&sc);
		} else if (is_ident_start(c)) {
			word(&sc);
		} else if (c == '$') {
			variable(&sc);
		} else if (c == '(') {
			open_paren(&sc, after_catch);
		} else if (c == ')') {
			close_paren(&sc);
		} else {
			punct(&sc);
		}
	}
}

void sl_expr_refs(const char *src, sl_expr_ref_fn fn, void *ud)
{
	struct expr_scan_cb cb = {.ref_fn = fn, .ud = ud};
	expr_scan(src, &cb);
}
