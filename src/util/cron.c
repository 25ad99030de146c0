/*
 * cron.c: 5-field cron expressions and the time zones they are read in.
 *
 * An expression is compiled into bit sets (minute, hour, day of month,
 * month, day of week). The next slot is searched on the zone's wall clock,
 * field by field (a month that does not match skips the whole month), and
 * each matching wall time is turned into an instant:
 * - a wall time that happens twice (DST ends) is its first instant, so a
 *   slot fires once;
 * - a wall time that never happens (DST starts) is moved later by the jump
 *   (02:30 becomes 03:30), so a daily slot is not lost.
 *
 * Zones come from the TZ database's compiled files (TZif, RFC 8536), read
 * once; instants past the last transition follow the file's POSIX TZ
 * footer ("CET-1CEST,M3.5.0,M10.5.0/3"). Nothing here touches the process's
 * TZ variable or localtime(), so any thread may use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"

#define CRON_EXPR_MAX 256
#define TZIF_MAX (256 * 1024)
#define TZ_NAME_MAX 128
#define TZ_PATH_MAX 512
/* Search no further than this for a next slot (an expression like
 * "0 0 30 2 *" never matches). Covers every leap-year pattern. */
#define CRON_HORIZON_S (366LL * 86400 * 9)

struct sl_cron {
	uint64_t minute; /* bits 0..59 */
	uint32_t hour;   /* bits 0..23 */
	uint32_t dom;    /* bits 1..31 */
	uint16_t month;  /* bits 1..12 */
	uint8_t dow;     /* bits 0..6, Sunday = 0 */
	bool dom_star, dow_star; /* a field written as '*' or '*\/n' (Vixie cron's day rule) */
};

/* ---- civil dates (Howard Hinnant's algorithms): no timegm, no TZ ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* 0 = Sunday */
static int weekday(int64_t days)
{
	return (int)((days % 7 + 11) % 7);
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dim[m - 1];
}

/* ---- parsing ---- */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
					  "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* 3-letter names for lo.., or NULL */
	int nnames;
	int name_base;            /* the value of names[0] */
};

static const struct field fields[5] = {
	{"minute", 0, 59, NULL, 0, 0},
	{"hour", 0, 23, NULL, 0, 0},
	{"day of month", 1, 31, NULL, 0, 0},
	{"month", 1, 12, month_names, 12, 1},
	{"day of week", 0, 7, dow_names, 7, 0}, /* 7 is Sunday too */
};

/* A number or a name at *p; advances *p. */
static bool field_value(const struct field *f, const char **p, int *out)
{
	const char *s = *p;
	if (*s >= '0' && *s <= '9') {
		int v = 0, n = 0;
		while (*s >= '0' && *s <= '9' && n < 3) {
			v = v * 10 + (*s++ - '0');
			n++;
		}
		if (*s >= '0' && *s <= '9')
			return false;
		*p = s;
		*out = v;
		return true;
	}
	for (int i = 0; i < f->nnames; i++) {
		if (strncasecmp(s, f->names[i], 3) == 0) {
			char c = s[3];
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
				return false;
			*p = s + 3;
			*out = f->name_base + i;
			return true;
		}
	}
	return false;
}

/* Parses one field (a list of *, N, N-M, each with an optional /STEP) into
 * bits. Returns false with a message. */
static bool parse_field(const struct field *f, const char *s, uint64_t *bits, bool *star, char *err, size_t n)
{
	*bits = 0;
	*star = s[0] == '*';
	const char *p = s;
	for (;;) {
		int lo, hi, step = 1;
		if (*p == '*') {
			lo = f->lo;
			hi = f->hi == 7 ? 6 : f->hi;
			p++;
		} else {
			if (!field_value(f, &p, &lo)) {
				snprintf(err, n, "%s: '%s' is not a number, range or list", f->name, s);
				return false;
			}
			hi = lo;
			if (*p == '-') {
				p++;
				if (!field_value(f, &p, &hi)) {
					snprintf(err, n, "%s: '%s' has a range without an end", f->name, s);
					return false;
				}
			} else if (*p == '/') {
				hi = f->hi == 7 ? 6 : f->hi; /* "5/15": from 5 to the end */
			}
		}
		if (*p == '/') {
			p++;
			int v = 0, k = 0;
			while (*p >= '0' && *p <= '9' && k < 3) {
				v = v * 10 + (*p++ - '0');
				k++;
			}
			if (k == 0 || v < 1 || (*p >= '0' && *p <= '9')) {
				snprintf(err, n, "%s: '%s' needs a step of 1 or more after '/'", f->name, s);
				return false;
			}
			step = v;
		}
		if (lo < f->lo || hi > f->hi || lo > f->hi || hi < f->lo) {
			snprintf(err, n, "%s: '%s' is outside %d-%d", f->name, s, f->lo, f->hi);
			return false;
		}
		if (lo > hi) {
			snprintf(err, n, "%s: '%s' is a range that runs backwards", f->name, s);
			return false;
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
		if (*p == '\0')
			return true;
		if (*p != ',') {
			snprintf(err, n, "%s: unexpected '%c' in '%s'", f->name, *p, s);
			return false;
		}
		p++;
	}
}

static const struct {
	const char *name, *expr;
} macros[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

struct sl_cron *sl_cron_parse(const char *expr, char *err, size_t errlen)
{
	if (!expr || strlen(expr) >= CRON_EXPR_MAX) {
		snprintf(err, errlen, "a cron expression has 5 fields and at most %d characters", CRON_EXPR_MAX - 1);
		return NULL;
	}
	if (expr[0] == '@') {
		for (size_t i = 0; i < SL_ARRAY_LEN(macros); i++)
			if (strcmp(expr, macros[i].name) == 0)
				return sl_cron_parse(macros[i].expr, err, errlen);
		snprintf(err, errlen, "unknown '%.32s' (@hourly, @daily, @weekly, @monthly, @yearly)", expr);
		return NULL;
	}
	char buf[CRON_EXPR_MAX];
	snprintf(buf, sizeof buf, "%s", expr);
	char *parts[6];
	int np = 0;
	for (char *p = buf; *p && np < 6;) {
		p += strspn(p, " \t");
		if (!*p)
			break;
		parts[np++] = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = '\0';
	}
	if (np != 5) {
		snprintf(err, errlen, "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
				      "not %d%s", np > 5 ? 6 : np, np > 5 ? " or more" : "");
		return NULL;
	}
	struct sl_cron *c = sl_xcalloc(1, sizeof *c);
	uint64_t bits[5];
	bool star[5];
	for (int i = 0; i < 5; i++) {
		if (!parse_field(&fields[i], parts[i], &bits[i], &star[i], err, errlen)) {
			free(c);
			return NULL;
		}
	}
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	c->dow = (uint8_t)bits[4];
	c->dom_star = star[2];
	c->dow_star = star[4];
	return c;
}

void sl_cron_free(struct sl_cron *c)
{
	free(c);
}

/* ---- time zones ---- */

struct tz_rule {
	int month, week, day; /* Mm.w.d */
	int32_t time_s;       /* local time of day of the change (may be < 0 or > 24 h) */
};

struct sl_tz {
	int64_t *trans;    /* transition instants, s */
	uint8_t *idx;      /* the type after each transition */
	int32_t *utoff;    /* each type's UTC offset, s */
	size_t ntrans, ntypes;
	/* the footer: std offset, and when has_dst, the DST offset and rules */
	bool has_footer, has_dst;
	int32_t std_off, dst_off;
	struct tz_rule start, end;
};

static bool tz_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= TZ_NAME_MAX || s[0] == '/' || strstr(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
		      c == '_' || c == '-' || c == '+'))
			return false;
	}
	return true;
}

static int64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	if (n == 4)
		return (int32_t)(uint32_t)v;
	return (int64_t)v;
}

/* "[+-]hh[:mm[:ss]]" at *p: seconds. */
static bool posix_time(const char **p, int32_t *out)
{
	const char *s = *p;
	int sign = 1;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	int32_t parts[3] = {0, 0, 0};
	for (int k = 0; k < 3; k++) {
		int v = 0, nd = 0;
		while (*s >= '0' && *s <= '9' && nd < 3) {
			v = v * 10 + (*s++ - '0');
			nd++;
		}
		if (nd == 0)
			return false;
		parts[k] = v;
		if (*s != ':' || k == 2)
			break;
		s++;
	}
	if (parts[0] > 167 || parts[1] > 59 || parts[2] > 59)
		return false;
	*out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
	*p = s;
	return true;
}

static bool posix_name(const char **p)
{
	const char *s = *p;
	if (*s == '<') {
		const char *e = strchr(s, '>');
		if (!e)
			return false;
		*p = e + 1;
		return true;
	}
	int n = 0;
	while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
		s++;
		n++;
	}
	*p = s;
	return n >= 3;
}

static bool posix_rule(const char **p, struct tz_rule *r)
{
	const char *s = *p;
	int m, w, d;
	int used = 0;
	if (sscanf(s, "M%d.%d.%d%n", &m, &w, &d, &used) != 3 || m < 1 || m > 12 || w < 1 || w > 5 || d < 0 || d > 6)
		return false; /* the Jn and n forms are not used by current zones */
	s += used;
	r->month = m;
	r->week = w;
	r->day = d;
	r->time_s = 7200;
	if (*s == '/') {
		s++;
		if (!posix_time(&s, &r->time_s))
			return false;
	}
	*p = s;
	return true;
}

/* "STDoff[DST[off][,rule,rule]]"; POSIX offsets are positive west. */
static void parse_footer(struct sl_tz *tz, const char *s)
{
	int32_t off;
	if (!posix_name(&s) || !posix_time(&s, &off))
		return;
	tz->std_off = -off;
	tz->has_footer = true;
	if (*s == '\0')
		return;
	if (!posix_name(&s))
		return;
	tz->dst_off = tz->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if (!posix_time(&s, &off))
			return;
		tz->dst_off = -off;
	}
	if (*s++ != ',' || !posix_rule(&s, &tz->start) || *s++ != ',' || !posix_rule(&s, &tz->end))
		return;
	tz->has_dst = true;
}

static int tz_parse(struct sl_tz *tz, const unsigned char *b, size_t len)
{
	if (len < 44 || memcmp(b, "TZif", 4) != 0)
		return -1;
	bool v2 = b[4] >= '2';
	size_t off = 0;
	int tsize = 4;
	if (v2) { /* skip the 32-bit block to the 64-bit one */
		int64_t isut = be(b + 20, 4), isstd = be(b + 24, 4), leap = be(b + 28, 4);
		int64_t timecnt = be(b + 32, 4), typecnt = be(b + 36, 4), charcnt = be(b + 40, 4);
		if (isut < 0 || isstd < 0 || leap < 0 || timecnt < 0 || typecnt < 0 || charcnt < 0)
			return -1;
		off = 44 + (size_t)(timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut);
		if (off + 44 > len || memcmp(b + off, "TZif", 4) != 0)
			return -1;
		tsize = 8;
	}
	const unsigned char *h = b + off;
	int64_t isut = be(h + 20, 4), isstd = be(h + 24, 4), leap = be(h + 28, 4);
	int64_t timecnt = be(h + 32, 4), typecnt = be(h + 36, 4), charcnt = be(h + 40, 4);
	if (isut < 0 || isstd < 0 || leap < 0 || timecnt < 0 || timecnt > 100000 || typecnt < 1 || typecnt > 256 ||
	    charcnt < 0)
		return -1;
	size_t need = (size_t)(timecnt * (tsize + 1) + typecnt * 6 + charcnt + leap * (tsize + 4) + isstd + isut);
	const unsigned char *d = h + 44;
	if (off + 44 + need > len)
		return -1;
	tz->ntrans = (size_t)timecnt;
	tz->ntypes = (size_t)typecnt;
	tz->trans = sl_xcalloc(tz->ntrans ? tz->ntrans : 1, sizeof *tz->trans);
	tz->idx = sl_xcalloc(tz->ntrans ? tz->ntrans : 1, 1);
	tz->utoff = sl_xcalloc(tz->ntypes, sizeof *tz->utoff);
	for (size_t i = 0; i < tz->ntrans; i++)
		tz->trans[i] = be(d + i * (size_t)tsize, tsize);
	d += tz->ntrans * (size_t)tsize;
	for (size_t i = 0; i < tz->ntrans; i++) {
		tz->idx[i] = d[i];
		if (tz->idx[i] >= tz->ntypes)
			return -1;
	}
	d += tz->ntrans;
	for (size_t i = 0; i < tz->ntypes; i++)
		tz->utoff[i] = (int32_t)be(d + i * 6, 4);
	d += tz->ntypes * 6 + (size_t)charcnt + (size_t)leap * (size_t)(tsize + 4) + (size_t)isstd + (size_t)isut;
	if (v2 && d < b + len && *d == '\n') {
		const unsigned char *e = memchr(d + 1, '\n', (size_t)(b + len - d - 1));
		if (e && e - d - 1 < 128) {
			char footer[128];
			memcpy(footer, d + 1, (size_t)(e - d - 1));
			footer[e - d - 1] = '\0';
			parse_footer(tz, footer);
		}
	}
	return 0;
}

void sl_tz_free(struct sl_tz *tz)
{
	if (!tz)
		return;
	free(tz->trans);
	free(tz->idx);
	free(tz->utoff);
	free(tz);
}

struct sl_tz *sl_tz_parse(const void *data, size_t len)
{
	struct sl_tz *tz = sl_xcalloc(1, sizeof *tz);
	if (tz_parse(tz, data, len)) {
		sl_tz_free(tz);
		return NULL;
	}
	return tz;
}

struct sl_tz *sl_tz_load(const char *name, char *err, size_t n)
{
	if (!tz_name_ok(name)) {
		snprintf(err, n, "'%.64s' is not a time zone name (like Europe/Paris or UTC)", name);
		return NULL;
	}
	const char *dir = getenv("TZDIR");
	char path[TZ_PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, n, "unknown time zone '%s' (the TZ database, package tzdata, names them)", name);
		return NULL;
	}
	unsigned char *buf = sl_xmalloc(TZIF_MAX);
	size_t len = fread(buf, 1, TZIF_MAX, f);
	fclose(f);
	struct sl_tz *tz = sl_tz_parse(buf, len);
	free(buf);
	if (!tz)
		snprintf(err, n, "time zone '%s': %s is not a TZif file", name, path);
	return tz;
}

/* The instant of rule r in year y, given the offset in force before it. */
static int64_t rule_instant(const struct tz_rule *r, int64_t y, int32_t before_off)
{
	int64_t first = days_from_civil(y, r->month, 1);
	int day = 1 + (r->day - weekday(first) + 7) % 7 + (r->week - 1) * 7;
	while (day > days_in_month(y, r->month))
		day -= 7;
	return (first + day - 1) * 86400 + r->time_s - before_off;
}

static int32_t footer_offset(const struct sl_tz *tz, int64_t t)
{
	if (!tz->has_dst)
		return tz->std_off;
	int64_t y;
	int m, d;
	civil_from_days(floor_div(t + tz->std_off, 86400), &y, &m, &d);
	int64_t start = rule_instant(&tz->start, y, tz->std_off);
	int64_t end = rule_instant(&tz->end, y, tz->dst_off);
	bool dst = start < end ? t >= start && t < end : !(t >= end && t < start);
	return dst ? tz->dst_off : tz->std_off;
}

int32_t sl_tz_offset(const struct sl_tz *tz, int64_t t_s)
{
	if (!tz)
		return 0;
	if (tz->ntrans == 0 || t_s < tz->trans[0]) {
		if (tz->ntrans == 0 && tz->has_footer)
			return footer_offset(tz, t_s);
		return tz->utoff[0];
	}
	if (t_s >= tz->trans[tz->ntrans - 1] && tz->has_footer)
		return footer_offset(tz, t_s);
	size_t lo = 0, hi = tz->ntrans; /* the last transition <= t_s */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->trans[mid] <= t_s)
			lo = mid;
		else
			hi = mid;
	}
	return tz->utoff[tz->idx[lo]];
}

/* The instant of wall time L (seconds, read as if UTC) in tz: the first of
 * two in an overlap, moved later by the jump in a gap. */
static int64_t wall_to_instant(const struct sl_tz *tz, int64_t L)
{
	/* No zone is 14 h or more from UTC, so these two lie before and after
	 * every instant that could read L. */
	int32_t before = sl_tz_offset(tz, L - 50400);
	int32_t after = sl_tz_offset(tz, L + 50400);
	int64_t t1 = L - before, t2 = L - after;
	bool ok1 = sl_tz_offset(tz, t1) == before;
	bool ok2 = sl_tz_offset(tz, t2) == after;
	if (ok1 && ok2)
		return t1 < t2 ? t1 : t2;
	if (ok2)
		return t2;
	return t1; /* ok1, or a gap: the offset before the jump moves it later */
}

static bool day_matches(const struct sl_cron *c, int dom, int dow)
{
	bool d1 = c->dom >> dom & 1, d2 = c->dow >> dow & 1;
	if (c->dom_star || c->dow_star)
		return d1 && d2; /* a '*' field matches every day */
	return d1 || d2;         /* both restricted: either will do (Vixie cron) */
}

int64_t sl_cron_next(const struct sl_cron *c, const struct sl_tz *tz, int64_t after_ms)
{
	int64_t after = floor_div(after_ms, 1000);
	int64_t L = floor_div(after + sl_tz_offset(tz, after), 60) * 60 + 60;
	int64_t limit = L + CRON_HORIZON_S;
	/* Wall times before L may still be instants after `after` when the
	 * clock went back: start an overlap's length earlier (at most 3 h). */
	L -= 3 * 3600;
	while (L < limit) {
		int64_t days = floor_div(L, 86400);
		int64_t y;
		int mon, dom;
		civil_from_days(days, &y, &mon, &dom);
		int64_t sod = L - days * 86400;
		int hour = (int)(sod / 3600), minute = (int)(sod % 3600 / 60);
		if (!(c->month >> mon & 1)) {
			L = days_from_civil(mon == 12 ? y + 1 : y, mon == 12 ? 1 : mon + 1, 1) * 86400;
			continue;
		}
		if (!day_matches(c, dom, weekday(days))) {
			L = (days + 1) * 86400;
			continue;
		}
		if (!(c->hour >> hour & 1)) {
			L = days * 86400 + (hour + 1) * 3600;
			continue;
		}
		if (!(c->minute >> minute & 1)) {
			L += 60 - L % 60;
			continue;
		}
		int64_t t = wall_to_instant(tz, L);
		if (t > after)
			return t * 1000;
		L += 60;
	}
	return -1;
}
