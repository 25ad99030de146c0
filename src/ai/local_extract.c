/*
 * local_extract.c: the `local` provider's pattern extractors (PCRE2).
 *
 * The patterns are compiled once (JIT when the library has it) and shared
 * read-only; each call has its own match data, so every function here is
 * thread-safe. Text is matched as bytes (no UTF mode: invalid UTF-8 is
 * just bytes; the currency signs are matched as their UTF-8 sequences).
 * A match context caps backtracking, so no input can make a scan slow.
 *
 * Every extractor proposes candidates; what a regex cannot say is checked
 * in C (IBAN mod-97 and country length, calendar dates, digit counts of
 * phone numbers). Candidates that overlap are settled by priority: e-mail,
 * IBAN, amount, date, invoice number, phone (a date or an amount is not
 * also a phone number).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "ai/local.h"

#define MATCH_LIMIT 200000  /* backtracking steps per match attempt */
#define DEPTH_LIMIT 10000
#define HITS_MAX 100000     /* candidates per text */
#define VALUE_MAX 128       /* bytes of a normalised value */

/* The ISO codes read as a currency next to a number. */
#define CODES "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|RON|BGN|TRY|INR|CNY|BRL|MXN|ZAR|SGD|HKD|KRW"
/* A number with optional thousands separators (, . ' no-break space,
 * narrow no-break space) and up to 2 decimals. */
#define NUM "(\\d{1,3}(?:(?:[,.']|\\xc2\\xa0|\\xe2\\x80\\xaf)\\d{3})+(?:[.,]\\d{1,2})?|\\d+(?:[.,]\\d{1,2})?)"
/* The same, also with plain spaces between thousands ("1 234,50 €"): only
 * before a currency, where that style is common. */
#define NUM_SP "(\\d{1,3}(?:(?:[,.' ]|\\xc2\\xa0|\\xe2\\x80\\xaf)\\d{3})+(?:[.,]\\d{1,2})?|\\d+(?:[.,]\\d{1,2})?)"
#define SYMS "(US\\$|C\\$|A\\$|\\$|\\xe2\\x82\\xac|\\xc2\\xa3|\\xc2\\xa5)"
#define MONTHS                                                                                             \
	"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
	"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\\b"

enum rx {
	RX_EMAIL,
	RX_PHONE,
	RX_AMOUNT_PRE,
	RX_AMOUNT_POST,
	RX_DATE_YMD,
	RX_DATE_NUM,
	RX_DATE_MDY,
	RX_DATE_DMY,
	RX_IBAN,
	RX_INV_CODE,
	RX_INV_WORD,
	RX__COUNT
};

static const struct {
	const char *pattern;
	uint32_t flags;
} rx_def[RX__COUNT] = {
	[RX_EMAIL] = {"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
		      "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])",
		      0},
	/* +CC, 00CC, (area), groups of digits split by one space, dot or dash */
	[RX_PHONE] = {"(?<![\\w+#/.,:@$-])(?:\\+|00)?(?:\\(\\d{1,5}\\)[ .-]?)?\\d{1,14}"
		      "(?:(?:[ .-]|[ ]?\\(\\d{1,5}\\)[ ]?)\\d{1,10}){0,7}(?![\\w@/]|[.,-]\\d)",
		      0},
	[RX_AMOUNT_PRE] = {"(?<![\\w$])(?:" SYMS "|(" CODES ")(?![A-Za-z]))(?:[ ]|\\xc2\\xa0)?(-)?" NUM "(?![\\d])",
			   0},
	[RX_AMOUNT_POST] = {"(?<![\\w.,'$-])(-)?" NUM_SP "(?:[ ]|\\xc2\\xa0)?(?:" SYMS "|(" CODES ")(?![A-Za-z]))", 0},
	[RX_DATE_YMD] = {"(?<![\\d.,/-])(\\d{4})([-/.])(\\d{1,2})\\2(\\d{1,2})(?!\\d|[.,]\\d)", 0},
	[RX_DATE_NUM] = {"(?<![\\d.,/-])(\\d{1,2})([-/.])(\\d{1,2})\\2(\\d{4})(?!\\d|[.,]\\d)", 0},
	[RX_DATE_MDY] = {"\\b" MONTHS "\\.?[ ]{1,3}(\\d{1,2})(?:st|nd|rd|th)?(?:,[ ]{0,3}|[ ]{1,3})(\\d{4})(?!\\d)",
			 PCRE2_CASELESS},
	[RX_DATE_DMY] = {"\\b(\\d{1,2})(?:st|nd|rd|th)?[ ]{1,3}(?:of[ ]{1,3})?" MONTHS "\\.?,?[ ]{1,3}(\\d{4})(?!\\d)",
			 PCRE2_CASELESS},
	[RX_IBAN] = {"(?<![A-Za-z0-9])[A-Za-z]{2}\\d{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,3})?"
		     "(?![A-Za-z0-9])",
		     0},
	[RX_INV_CODE] = {"(?<![A-Za-z0-9-])INV(?:OICE)?[-_/#]?[ ]?(?=[A-Z0-9-]*\\d)[A-Z0-9]+(?:[-/][A-Z0-9]+)*"
			 "(?![A-Za-z0-9])",
			 0},
	[RX_INV_WORD] = {"\\binvoice(?:[ ]?(?:number|num|no|nr|id|ref(?:erence)?|#))?\\.?[ ]?(?:[:#][ ]?)?"
			 "(?=[A-Za-z0-9/-]*\\d)([A-Za-z0-9][A-Za-z0-9/-]{1,30}[A-Za-z0-9])(?![A-Za-z0-9/-])",
			 PCRE2_CASELESS},
};

static pcre2_code *rx_code[RX__COUNT];
static pcre2_match_context *rx_mctx;
static pthread_once_t rx_once = PTHREAD_ONCE_INIT;

static void rx_init(void)
{
	uint32_t jit = 0;
	pcre2_config(PCRE2_CONFIG_JIT, &jit);
	for (int i = 0; i < RX__COUNT; i++) {
		int ec;
		PCRE2_SIZE eo;
		rx_code[i] = pcre2_compile((PCRE2_SPTR)rx_def[i].pattern, PCRE2_ZERO_TERMINATED, rx_def[i].flags, &ec,
					   &eo, NULL);
		if (!rx_code[i]) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(ec, msg, sizeof msg);
			sl_log(SL_LOG_ERROR, "ai", "extractor pattern does not compile", "pattern", rx_def[i].pattern,
			       "error", (const char *)msg, NULL);
		}
		SL_ASSERT(rx_code[i] != NULL);
		if (jit)
			(void)pcre2_jit_compile(rx_code[i], PCRE2_JIT_COMPLETE); /* the interpreter if it fails */
	}
	rx_mctx = pcre2_match_context_create(NULL);
	SL_ASSERT(rx_mctx != NULL);
	pcre2_set_match_limit(rx_mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(rx_mctx, DEPTH_LIMIT);
}

const char *local_kind_name(enum local_kind k)
{
	switch (k) {
	case LOCAL_EMAIL: return "email";
	case LOCAL_PHONE: return "phone";
	case LOCAL_AMOUNT: return "amount";
	case LOCAL_DATE: return "date";
	case LOCAL_IBAN: return "iban";
	case LOCAL_INVOICE: return "invoice_number";
	}
	return "?";
}

/* ---- candidates ------------------------------------------------------------------ */

struct hit {
	size_t off, len;
	enum local_kind kind;
	char value[VALUE_MAX]; /* normalised: date YYYY-MM-DD, IBAN, invoice id, else as written */
	double amount;
	char currency[4];
};

struct hits {
	struct hit *v;
	size_t n, cap;
	bool full;
};

static struct hit *hit_add(struct hits *h, enum local_kind kind, size_t off, size_t len)
{
	if (h->n >= HITS_MAX) {
		h->full = true;
		return NULL;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 32;
		h->v = sl_xrealloc(h->v, h->cap * sizeof *h->v);
	}
	struct hit *x = &h->v[h->n++];
	memset(x, 0, sizeof *x);
	x->kind = kind;
	x->off = off;
	x->len = len;
	return x;
}

static void set_value(struct hit *x, const char *s, size_t n)
{
	n = SL_MIN(n, sizeof x->value - 1);
	memcpy(x->value, s, n);
	x->value[n] = '\0';
}

/* Group g of the last match: *s and *n, false when unset. */
static bool group(const char *text, const PCRE2_SIZE *ov, int g, const char **s, size_t *n)
{
	if (ov[2 * g] == PCRE2_UNSET)
		return false;
	*s = text + ov[2 * g];
	*n = ov[2 * g + 1] - ov[2 * g];
	return true;
}

static int num_n(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n && i < 6; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static bool valid_date(int y, int m, int d)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1)
		return false;
	int md = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	return d <= md;
}

static int month_of(const char *s)
{
	static const char *const names[] = {"jan", "feb", "mar", "apr", "may", "jun",
					    "jul", "aug", "sep", "oct", "nov", "dec"};
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, names[i], 3) == 0)
			return i + 1;
	return 0;
}

static void add_date(struct hits *h, size_t off, size_t len, int y, int m, int d)
{
	if (!valid_date(y, m, d))
		return;
	struct hit *x = hit_add(h, LOCAL_DATE, off, len);
	if (x)
		snprintf(x->value, sizeof x->value, "%04d-%02d-%02d", y, m, d);
}

/* The value of a number as written ("1,234.50", "1.234,50", "99"). */
static bool parse_number(const char *s, size_t n, double *out)
{
	char buf[64];
	size_t nd = 0, ndot = 0, ncomma = 0;
	for (size_t i = 0; i < n; i++) {
		ndot += s[i] == '.';
		ncomma += s[i] == ',';
	}
	char dec = 0; /* the decimal separator, if any */
	if (ndot && ncomma) {
		const char *ld = memrchr(s, '.', n), *lc = memrchr(s, ',', n);
		dec = ld > lc ? '.' : ',';
	} else if (ndot + ncomma == 1) {
		char c = ndot ? '.' : ',';
		const char *p = memchr(s, c, n);
		size_t after = 0;
		while (p + 1 + after < s + n && p[1 + after] >= '0' && p[1 + after] <= '9')
			after++;
		if (after != 3)
			dec = c;
	}
	for (size_t i = 0; i < n && nd < sizeof buf - 1; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			buf[nd++] = s[i];
		else if (dec && s[i] == dec)
			buf[nd++] = '.';
	}
	buf[nd] = '\0';
	if (nd == 0)
		return false;
	char *end;
	*out = strtod(buf, &end);
	return *end == '\0' && isfinite(*out);
}

static const char *currency_of_symbol(const char *s, size_t n)
{
	if (n == 3 && memcmp(s, "US$", 3) == 0)
		return "USD";
	if (n == 2 && memcmp(s, "C$", 2) == 0)
		return "CAD";
	if (n == 2 && memcmp(s, "A$", 2) == 0)
		return "AUD";
	if (n == 1 && s[0] == '$')
		return "USD";
	if (n == 3 && memcmp(s, "\xe2\x82\xac", 3) == 0)
		return "EUR";
	if (n == 2 && memcmp(s, "\xc2\xa3", 2) == 0)
		return "GBP";
	if (n == 2 && memcmp(s, "\xc2\xa5", 2) == 0)
		return "JPY";
	return NULL;
}

/* IBAN lengths by country (ECBS registry); a country not listed needs only
 * 15-34 characters and the checksum. */
static int iban_length(const char *cc)
{
	static const struct {
		char cc[3];
		int len;
	} t[] = {
		{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
		{"BH", 22}, {"BR", 29}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18},
		{"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
		{"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22},
		{"IL", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LI", 21},
		{"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MR", 27},
		{"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25},
		{"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27},
		{"TN", 24}, {"TR", 26}, {"UA", 29}, {"VG", 24}, {"XK", 20},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(t); i++)
		if (cc[0] == t[i].cc[0] && cc[1] == t[i].cc[1])
			return t[i].len;
	return 0;
}

/* s: upper case letters and digits, no spaces. */
static bool iban_valid(const char *s, size_t n)
{
	if (n < 15 || n > 34)
		return false;
	int want = iban_length(s);
	if (want && (size_t)want != n)
		return false;
	unsigned r = 0;
	for (size_t k = 0; k < n; k++) {
		char c = s[(k + 4) % n]; /* the first four characters move to the end */
		if (c >= '0' && c <= '9')
			r = (r * 10 + (unsigned)(c - '0')) % 97;
		else if (c >= 'A' && c <= 'Z')
			r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return false;
	}
	return r == 1;
}

static void add_iban(struct hits *h, const char *text, size_t off, size_t len)
{
	/* a candidate may have taken a following group of a number: drop
	 * space-separated groups from the end until it checks out */
	while (len >= 15) {
		char v[48];
		size_t n = 0;
		for (size_t i = 0; i < len && n < sizeof v - 1; i++)
			if (text[off + i] != ' ')
				v[n++] = (char)(text[off + i] >= 'a' && text[off + i] <= 'z' ? text[off + i] - 32
											 : text[off + i]);
		v[n] = '\0';
		if (iban_valid(v, n)) {
			struct hit *x = hit_add(h, LOCAL_IBAN, off, len);
			if (x)
				set_value(x, v, n);
			return;
		}
		const char *sp = memrchr(text + off, ' ', len);
		if (!sp)
			return;
		len = (size_t)(sp - (text + off));
	}
}

static void add_phone(struct hits *h, const char *s, size_t off, size_t len)
{
	size_t digits = 0, seps = 0, dots = 0, groups3 = 0, ngroups = 0, glen = 0, gl[3] = {0};
	bool plus = s[0] == '+' || (len > 2 && s[0] == '0' && s[1] == '0' && s[2] != '0');
	bool paren = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9') {
			digits++;
			glen++;
			continue;
		}
		if (glen) {
			if (ngroups < 3)
				gl[ngroups] = glen;
			ngroups++;
			groups3 += glen == 3;
			glen = 0;
		}
		if (c == '(' || c == ')')
			paren = true;
		else if (c != '+') {
			seps++;
			dots += c == '.';
		}
	}
	if (glen) {
		if (ngroups < 3)
			gl[ngroups] = glen;
		ngroups++;
		groups3 += glen == 3;
	}
	if (digits < 7 || digits > 15)
		return;
	if (!plus && !paren && seps == 0 && digits < 10)
		return; /* a bare run of digits: an order or account number */
	if (!plus && !paren && ngroups == 3 && seps == 2 &&
	    ((gl[0] == 4 && gl[1] <= 2 && gl[2] <= 2) || (gl[0] <= 2 && gl[1] <= 2 && gl[2] == 4)))
		return; /* shaped like a date, if not a valid one */
	if (!plus && dots && dots == seps && groups3 + 1 == ngroups && ngroups > 1)
		return; /* 12.345.678: a number with thousands separators */
	struct hit *x = hit_add(h, LOCAL_PHONE, off, len);
	if (x)
		set_value(x, s, len);
}

/* Runs one pattern over text, calling on_match for each match. */
static void scan(enum rx r, const char *text, size_t len, pcre2_match_data *md, struct hits *h)
{
	PCRE2_SIZE start = 0;
	while (start <= len && !h->full) {
		int rc = pcre2_match(rx_code[r], (PCRE2_SPTR)text, len, start, 0, md, rx_mctx);
		if (rc < 0)
			return; /* no match, or a limit: what was found stands */
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		size_t off = ov[0], mlen = ov[1] - ov[0];
		const char *s, *s2, *s3;
		size_t n, n2, n3;
		switch (r) {
		case RX_EMAIL: {
			struct hit *x = hit_add(h, LOCAL_EMAIL, off, mlen);
			if (x)
				set_value(x, text + off, mlen);
			break;
		}
		case RX_PHONE:
			add_phone(h, text + off, off, mlen);
			break;
		case RX_AMOUNT_PRE:
		case RX_AMOUNT_POST: {
			/* groups: PRE 1 sym, 2 code, 3 minus, 4 number; POST 1 minus, 2 number, 3 sym, 4 code */
			bool pre = r == RX_AMOUNT_PRE;
			const char *cur = NULL;
			if (group(text, ov, pre ? 1 : 3, &s, &n))
				cur = currency_of_symbol(s, n);
			double v;
			if (!group(text, ov, pre ? 4 : 2, &s3, &n3) || !parse_number(s3, n3, &v))
				break;
			if (group(text, ov, pre ? 3 : 1, &s2, &n2))
				v = -v;
			struct hit *x = hit_add(h, LOCAL_AMOUNT, off, mlen);
			if (!x)
				break;
			x->amount = v;
			if (cur)
				memcpy(x->currency, cur, 4);
			else if (group(text, ov, pre ? 2 : 4, &s, &n) && n == 3)
				memcpy(x->currency, s, 3);
			set_value(x, text + off, mlen);
			break;
		}
		case RX_DATE_YMD:
			if (group(text, ov, 1, &s, &n) && group(text, ov, 3, &s2, &n2) && group(text, ov, 4, &s3, &n3))
				add_date(h, off, mlen, num_n(s, n), num_n(s2, n2), num_n(s3, n3));
			break;
		case RX_DATE_NUM:
			if (group(text, ov, 1, &s, &n) && group(text, ov, 3, &s2, &n2) && group(text, ov, 4, &s3, &n3)) {
				int a = num_n(s, n), b = num_n(s2, n2);
				/* day first unless only the other reading is a date (11/23/2026) */
				if (a <= 12 && b > 12)
					add_date(h, off, mlen, num_n(s3, n3), a, b);
				else
					add_date(h, off, mlen, num_n(s3, n3), b, a);
			}
			break;
		case RX_DATE_MDY:
			if (group(text, ov, 1, &s, &n) && group(text, ov, 2, &s2, &n2) && group(text, ov, 3, &s3, &n3))
				add_date(h, off, mlen, num_n(s3, n3), month_of(s), num_n(s2, n2));
			break;
		case RX_DATE_DMY:
			if (group(text, ov, 1, &s, &n) && group(text, ov, 2, &s2, &n2) && group(text, ov, 3, &s3, &n3))
				add_date(h, off, mlen, num_n(s3, n3), month_of(s2), num_n(s, n));
			break;
		case RX_IBAN:
			add_iban(h, text, off, mlen);
			break;
		case RX_INV_CODE: {
			struct hit *x = hit_add(h, LOCAL_INVOICE, off, mlen);
			if (x)
				set_value(x, text + off, mlen);
			break;
		}
		case RX_INV_WORD:
			if (group(text, ov, 1, &s, &n)) {
				struct hit *x = hit_add(h, LOCAL_INVOICE, (size_t)(s - text), n);
				if (x)
					set_value(x, s, n);
			}
			break;
		case RX__COUNT:
			SL_ASSERT(!"no such pattern");
		}
		start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
	}
}

static int kind_rank(enum local_kind k)
{
	switch (k) {
	case LOCAL_EMAIL: return 0;
	case LOCAL_IBAN: return 1;
	case LOCAL_AMOUNT: return 2;
	case LOCAL_DATE: return 3;
	case LOCAL_INVOICE: return 4;
	case LOCAL_PHONE: return 5;
	}
	return 6;
}

static int cmp_rank(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	int rx = kind_rank(x->kind), ry = kind_rank(y->kind);
	if (rx != ry)
		return rx - ry;
	return (x->off > y->off) - (x->off < y->off);
}

static int cmp_off(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	return (x->off > y->off) - (x->off < y->off);
}

/* Every extractor over text; overlaps settled; sorted by offset. Returns
 * 0 or SL_ENOMEM (h is empty then). */
static int scan_all(const char *text, struct hits *h)
{
	pthread_once(&rx_once, rx_init);
	memset(h, 0, sizeof *h);
	size_t len = strnlen(text, LOCAL_EXTRACT_TEXT_MAX);
	pcre2_match_data *md = pcre2_match_data_create(16, NULL);
	if (!md)
		return SL_ENOMEM;
	for (int r = 0; r < RX__COUNT; r++)
		scan((enum rx)r, text, len, md, h);
	pcre2_match_data_free(md);
	if (h->n == 0)
		return 0;
	unsigned char *used = calloc(len + 1, 1);
	if (!used) {
		free(h->v);
		memset(h, 0, sizeof *h);
		return SL_ENOMEM;
	}
	qsort(h->v, h->n, sizeof *h->v, cmp_rank);
	size_t m = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct hit *x = &h->v[i];
		bool clash = false;
		for (size_t k = x->off; k < x->off + x->len && !clash; k++)
			clash = used[k];
		if (clash)
			continue;
		memset(used + x->off, 1, x->len);
		h->v[m++] = *x;
	}
	free(used);
	h->n = m;
	qsort(h->v, h->n, sizeof *h->v, cmp_off);
	return 0;
}

/* ---- the public functions ---------------------------------------------------------- */

static bool seen_str(const json_t *arr, const char *s)
{
	size_t i;
	const json_t *v;
	json_array_foreach(arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

static json_t *amount_json(const struct hit *x)
{
	return json_pack("{s:f, s:s?, s:s}", "amount", x->amount, "currency", x->currency[0] ? x->currency : NULL,
			 "text", x->value);
}

static json_t *hits_json(const struct hits *h)
{
	json_t *o = json_pack("{s:[], s:[], s:[], s:[], s:[], s:[]}", "emails", "phones", "amounts", "dates", "ibans",
			      "invoice_numbers");
	if (!o)
		return NULL;
	static const char *const key[] = {[LOCAL_EMAIL] = "emails", [LOCAL_PHONE] = "phones",
					  [LOCAL_AMOUNT] = "amounts", [LOCAL_DATE] = "dates",
					  [LOCAL_IBAN] = "ibans", [LOCAL_INVOICE] = "invoice_numbers"};
	for (size_t i = 0; i < h->n; i++) {
		const struct hit *x = &h->v[i];
		json_t *arr = json_object_get(o, key[x->kind]);
		if (x->kind == LOCAL_AMOUNT) {
			size_t k;
			json_t *v;
			bool dup = false;
			json_array_foreach(arr, k, v)
				dup = dup || strcmp(json_string_value(json_object_get(v, "text")), x->value) == 0;
			if (!dup)
				json_array_append_new(arr, amount_json(x));
		} else if (!seen_str(arr, x->value)) {
			json_array_append_new(arr, json_string_nocheck(x->value));
		}
	}
	return o;
}

int local_extract_all(const char *text, json_t **out)
{
	*out = NULL;
	if (!text)
		return SL_EINVAL;
	struct hits h;
	int rc = scan_all(text, &h);
	if (rc)
		return rc;
	*out = hits_json(&h);
	free(h.v);
	return *out ? 0 : SL_ENOMEM;
}

int local_pii_spans(const char *text, struct local_span **spans, size_t *n)
{
	*spans = NULL;
	*n = 0;
	if (!text)
		return 0;
	struct hits h;
	int rc = scan_all(text, &h);
	if (rc)
		return rc;
	size_t m = 0;
	for (size_t i = 0; i < h.n; i++)
		if (h.v[i].kind == LOCAL_EMAIL || h.v[i].kind == LOCAL_PHONE || h.v[i].kind == LOCAL_IBAN)
			m++;
	if (m) {
		*spans = malloc(m * sizeof **spans);
		if (!*spans) {
			free(h.v);
			return SL_ENOMEM;
		}
		for (size_t i = 0; i < h.n; i++)
			if (h.v[i].kind == LOCAL_EMAIL || h.v[i].kind == LOCAL_PHONE || h.v[i].kind == LOCAL_IBAN)
				(*spans)[(*n)++] = (struct local_span){h.v[i].off, h.v[i].len, h.v[i].kind};
	}
	free(h.v);
	return 0;
}

/* ---- filling a schema ------------------------------------------------------------- */

enum fill_kind { FILL_NONE, FILL_EMAIL, FILL_PHONE, FILL_IBAN, FILL_CURRENCY, FILL_AMOUNT, FILL_TOTAL, FILL_DATE,
		 FILL_INVOICE };

static bool has(const char *name, const char *word)
{
	return strstr(name, word) != NULL;
}

/* Whether name (tokens split by _) has the token word or its plural:
 * "fee" is in "late_fee" and "fees", not in "feedback". */
static bool has_tok(const char *name, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = name; (p = strstr(p, word)) != NULL; p++) {
		if (p != name && p[-1] != '_')
			continue;
		const char *e = p + wl;
		if (*e == 's')
			e++;
		if (*e == '\0' || *e == '_')
			return true;
	}
	return false;
}

/* What a property holds, from its name (lower-cased, separators as _)
 * and its format. Order matters: "invoice_date" is a date,
 * "invoice_total" an amount, "amount_currency" a currency. */
static enum fill_kind fill_kind_of(const char *raw, const json_t *prop)
{
	char name[128];
	size_t n = 0;
	for (const char *p = raw; *p && n < sizeof name - 1; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z') {
			if (n && name[n - 1] != '_' && p > raw && p[-1] >= 'a' && p[-1] <= 'z')
				name[n++] = '_'; /* camelCase */
			if (n < sizeof name - 1)
				name[n++] = (char)(c + 32);
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			name[n++] = c;
		} else if (n && name[n - 1] != '_') {
			name[n++] = '_';
		}
	}
	name[n] = '\0';
	const char *fmt = json_string_value(json_object_get(prop, "format"));
	if (fmt && strcmp(fmt, "email") == 0)
		return FILL_EMAIL;
	if (fmt && (strcmp(fmt, "date") == 0 || strcmp(fmt, "date-time") == 0))
		return FILL_DATE;
	if (strcmp(name, "date") == 0 || sl_str_endswith(name, "_date") || sl_str_startswith(name, "date_") ||
	    has(name, "_date_"))
		return FILL_DATE;
	if (has(name, "email") || has(name, "e_mail"))
		return FILL_EMAIL;
	if (has(name, "phone") || has_tok(name, "mobile") || has_tok(name, "tel"))
		return FILL_PHONE;
	if (has(name, "iban"))
		return FILL_IBAN;
	if (has(name, "currency"))
		return FILL_CURRENCY;
	if (has_tok(name, "total"))
		return FILL_TOTAL;
	if (has_tok(name, "amount") || has_tok(name, "price") || has_tok(name, "cost") || has_tok(name, "fee") ||
	    has_tok(name, "sum"))
		return FILL_AMOUNT;
	if (sl_str_startswith(name, "invoice") || has(name, "_invoice"))
		return FILL_INVOICE;
	return FILL_NONE;
}

static bool type_is(const json_t *prop, const char *t)
{
	const json_t *ty = json_object_get(prop, "type");
	if (json_is_string(ty))
		return strcmp(json_string_value(ty), t) == 0;
	size_t i;
	const json_t *v;
	json_array_foreach(ty, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), t) == 0)
			return true;
	return false;
}

static json_t *value_for(const struct hits *h, enum fill_kind k, const json_t *prop)
{
	bool many = type_is(prop, "array") && !type_is(prop, "string") && !type_is(prop, "number");
	enum local_kind want = k == FILL_EMAIL ? LOCAL_EMAIL
			       : k == FILL_PHONE ? LOCAL_PHONE
			       : k == FILL_IBAN ? LOCAL_IBAN
			       : k == FILL_DATE ? LOCAL_DATE
			       : k == FILL_INVOICE ? LOCAL_INVOICE
						   : LOCAL_AMOUNT;
	const struct hit *pick = NULL;
	json_t *arr = many ? json_array() : NULL;
	for (size_t i = 0; i < h->n; i++) {
		const struct hit *x = &h->v[i];
		if (x->kind != want || (k == FILL_CURRENCY && !x->currency[0]))
			continue;
		if (many) {
			if (want == LOCAL_AMOUNT)
				json_array_append_new(arr, json_real(x->amount));
			else if (!seen_str(arr, x->value))
				json_array_append_new(arr, json_string_nocheck(x->value));
			continue;
		}
		if (k == FILL_TOTAL) { /* the largest amount: a total sums the others */
			if (!pick || x->amount > pick->amount)
				pick = x;
			continue;
		}
		pick = x;
		break;
	}
	if (many) {
		if (json_array_size(arr) == 0) {
			json_decref(arr);
			return NULL;
		}
		return arr;
	}
	if (!pick)
		return NULL;
	switch (k) {
	case FILL_CURRENCY:
		return json_string(pick->currency);
	case FILL_AMOUNT:
	case FILL_TOTAL:
		if (type_is(prop, "string")) {
			char b[64];
			snprintf(b, sizeof b, "%.2f", pick->amount);
			return json_string(b);
		}
		if (type_is(prop, "integer") && !type_is(prop, "number"))
			return pick->amount == floor(pick->amount) && fabs(pick->amount) < 9e15
				       ? json_integer((json_int_t)pick->amount)
				       : NULL;
		return json_real(pick->amount);
	case FILL_DATE: {
		const char *fmt = json_string_value(json_object_get(prop, "format"));
		if (fmt && strcmp(fmt, "date-time") == 0) {
			char b[40];
			snprintf(b, sizeof b, "%sT00:00:00Z", pick->value);
			return json_string(b);
		}
		return json_string(pick->value);
	}
	default:
		return json_string_nocheck(pick->value);
	}
}

int local_extract_fill(const char *text, const json_t *schema, json_t **out, double *confidence)
{
	*out = NULL;
	if (confidence)
		*confidence = 0;
	if (!json_is_object(schema) || !text)
		return SL_EINVAL;
	struct hits h;
	int rc = scan_all(text, &h);
	if (rc)
		return rc;
	json_t *o = json_object();
	const json_t *props = json_object_get(schema, "properties");
	const char *name;
	const json_t *prop;
	json_object_foreach((json_t *)props, name, prop) {
		enum fill_kind k = fill_kind_of(name, prop);
		if (k == FILL_NONE)
			continue;
		json_t *v = value_for(&h, k, prop);
		if (v)
			json_object_set_new(o, name, v);
	}
	free(h.v);
	const json_t *req = json_object_get(schema, "required");
	size_t nreq = 0, filled = 0, i;
	const json_t *r;
	json_array_foreach(req, i, r) {
		if (!json_is_string(r))
			continue;
		nreq++;
		filled += json_object_get(o, json_string_value(r)) != NULL;
	}
	if (confidence)
		*confidence = nreq ? (double)filled / (double)nreq : json_object_size(o) > 0 ? 1.0 : 0.0;
	*out = o;
	return 0;
}
