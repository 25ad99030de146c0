/*
 * "format" checks. Sluice contracts assert formats (a webhook whose "from" is
 * not an e-mail address is a contract violation, not an annotation); the
 * checks follow the RFCs the JSON Schema specification names, kept strict
 * and ASCII-only. Unknown formats are annotations and always pass.
 */
#include <arpa/inet.h>
#include <string.h>

#include "contract/contract_int.h"

static const struct {
	const char *name;
	enum slc_format f;
} formats[] = {
	{"date-time", SLC_FMT_DATE_TIME}, {"date", SLC_FMT_DATE},
	{"time", SLC_FMT_TIME},           {"email", SLC_FMT_EMAIL},
	{"uri", SLC_FMT_URI},             {"uri-reference", SLC_FMT_URI_REFERENCE},
	{"uuid", SLC_FMT_UUID},           {"ipv4", SLC_FMT_IPV4},
	{"ipv6", SLC_FMT_IPV6},           {"hostname", SLC_FMT_HOSTNAME},
};

enum slc_format slc_format_lookup(const char *name)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(formats); i++)
		if (strcmp(formats[i].name, name) == 0)
			return formats[i].f;
	return SLC_FMT_NONE;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* strchr would also "find" the NUL a JSON string may hold. */
static bool is_one_of(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n decimal digits at s, into *v. */
static bool digits(const char *s, size_t n, int *v)
{
	int x = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return true;
}

/* ---- RFC 3339 ------------------------------------------------------------------ */
static bool check_date(const char *s, size_t n)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;
	if (n != 10 || s[4] != '-' || s[7] != '-')
		return false;
	if (!digits(s, 4, &y) || !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
		return false;
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return !(m == 2 && d == 29 && !leap);
}

/* full-time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM). A leap second is allowed
 * only where it can happen: 23:59:60 in UTC. */
static bool check_time(const char *s, size_t n)
{
	int h, m, sec, oh = 0, om = 0, sign = 0;
	if (n < 9 || s[2] != ':' || s[5] != ':')
		return false;
	if (!digits(s, 2, &h) || !digits(s + 3, 2, &m) || !digits(s + 6, 2, &sec))
		return false;
	size_t i = 8;
	if (i < n && s[i] == '.') {
		size_t j = ++i;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == j)
			return false;
	}
	if (i >= n)
		return false;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		sign = s[i] == '+' ? 1 : -1;
		if (n - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) ||
		    !digits(s + i + 4, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
		i += 6;
	} else {
		return false;
	}
	if (i != n || h > 23 || m > 59 || sec > 60)
		return false;
	if (sec == 60) {
		int utc = ((h * 60 + m - sign * (oh * 60 + om)) % 1440 + 1440) % 1440;
		if (utc != 23 * 60 + 59)
			return false;
	}
	return true;
}

static bool check_date_time(const char *s, size_t n)
{
	if (n < 20 || (s[10] != 'T' && s[10] != 't'))
		return false;
	return check_date(s, 10) && check_time(s + 11, n - 11);
}

/* ---- hosts ------------------------------------------------------------------------- */
static bool check_ipv4(const char *s, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		size_t j = i;
		int v = 0;
		while (i < n && is_digit(s[i]) && i - j < 3)
			v = v * 10 + (s[i++] - '0');
		if (i == j || v > 255 || (i - j > 1 && s[j] == '0'))
			return false;
	}
	return i == n;
}

static bool check_ipv6(const char *s, size_t n)
{
	char buf[64];
	unsigned char out[16];
	if (n == 0 || n >= sizeof(buf))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
			return false; /* no zone ids, no whitespace */
	/* inet_pton takes "::ffff:01.2.3.4"; RFC 3986's dec-octet does not */
	const char *dot = memchr(s, '.', n);
	if (dot) {
		size_t k = (size_t)(dot - s);
		while (k > 0 && s[k - 1] != ':')
			k--;
		if (!check_ipv4(s + k, n - k))
			return false;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
static bool check_hostname(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

/* ---- e-mail (RFC 5321 Mailbox, ASCII) ------------------------------------------------- */
static bool is_atext(char c)
{
	return is_alnum(c) || is_one_of(c, "!#$%&'*+/=?^_`{|}~-");
}

static bool check_local_part(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	if (s[0] == '"') {
		if (n < 2 || s[n - 1] != '"')
			return false;
		for (size_t i = 1; i + 1 < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '\\') {
				if (++i + 1 >= n)
					return false;
				continue;
			}
			if (c < 32 || c > 126 || c == '"')
				return false;
		}
		return true;
	}
	if (s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!is_atext(s[i])) {
			return false;
		}
	}
	return true;
}

static bool check_email(const char *s, size_t n)
{
	const char *at = NULL;
	/* the last "@" splits: a quoted local part may contain one */
	for (size_t i = n; i > 0; i--) {
		if (s[i - 1] == '@') {
			at = s + i - 1;
			break;
		}
	}
	if (!at)
		return false;
	size_t ln = (size_t)(at - s), dn = n - ln - 1;
	const char *d = at + 1;
	if (!check_local_part(s, ln) || dn == 0)
		return false;
	if (d[0] == '[') {
		if (d[dn - 1] != ']')
			return false;
		if (dn > 6 && strncmp(d + 1, "IPv6:", 5) == 0)
			return check_ipv6(d + 6, dn - 7);
		return check_ipv4(d + 1, dn - 2);
	}
	return check_hostname(d, dn);
}

/* ---- RFC 3986 URI --------------------------------------------------------------------- */
static bool uri_char_ok(char c)
{
	return is_alnum(c) || is_one_of(c, "-._~!$&'()*+,;=:@/?#[]");
}

static bool userinfo_or_host_char(char c)
{
	return is_alnum(c) || is_one_of(c, "-._~!$&'()*+,;=%");
}

/* authority = [ userinfo "@" ] host [ ":" port ], host an IP literal in
 * brackets, an IPv4 address or a registered name. */
static bool check_authority(const char *a, size_t n)
{
	const char *at = memchr(a, '@', n);
	size_t i = 0;
	if (at) {
		if (memchr(at + 1, '@', n - (size_t)(at + 1 - a)))
			return false;
		for (; a + i < at; i++)
			if (!userinfo_or_host_char(a[i]) && a[i] != ':')
				return false;
		i++;
	}
	if (i < n && a[i] == '[') {
		const char *close = memchr(a + i, ']', n - i);
		if (!close)
			return false;
		size_t start = i + 1, len = (size_t)(close - a) - start;
		bool future = len > 0 && (a[start] == 'v' || a[start] == 'V');
		if (!future && !check_ipv6(a + start, len))
			return false;
		i = (size_t)(close - a) + 1;
	} else {
		while (i < n && a[i] != ':') {
			if (!userinfo_or_host_char(a[i]))
				return false;
			i++;
		}
	}
	if (i < n) {
		if (a[i] != ':')
			return false;
		for (i++; i < n; i++)
			if (!is_digit(a[i]))
				return false;
	}
	return true;
}

static bool check_uri_ref(const char *s, size_t n, bool need_scheme)
{
	size_t i = 0;
	if (n > 0 && is_alnum(s[0]) && !is_digit(s[0])) {
		while (i < n && (is_alnum(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
			i++;
		if (i < n && s[i] == ':')
			i++;
		else
			i = 0;
	}
	bool scheme = i > 0;
	if (need_scheme && !scheme)
		return false;
	bool frag = false;
	for (size_t k = i; k < n; k++) {
		char c = s[k];
		if (c == '%') {
			if (k + 2 >= n || !is_hex(s[k + 1]) || !is_hex(s[k + 2]))
				return false;
			k += 2;
		} else if (c == '#') {
			if (frag)
				return false;
			frag = true;
		} else if (!uri_char_ok(c)) {
			return false;
		}
	}
	size_t auth_end = i;
	if (n - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
		size_t a = i + 2;
		auth_end = a;
		while (auth_end < n && !is_one_of(s[auth_end], "/?#"))
			auth_end++;
		if (!check_authority(s + a, auth_end - a))
			return false;
	} else if (!scheme) {
		/* "a:b" would read as a scheme: a relative path's first segment has no ":" */
		for (size_t k = i; k < n && !is_one_of(s[k], "/?#"); k++)
			if (s[k] == ':')
				return false;
	}
	/* "[" "]" belong to an IP literal in the authority only */
	for (size_t k = auth_end; k < n; k++)
		if (s[k] == '[' || s[k] == ']')
			return false;
	for (size_t k = 0; k < i; k++)
		if (s[k] == '[' || s[k] == ']')
			return false;
	return true;
}

static bool check_uuid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

bool slc_format_check(enum slc_format f, const char *s, size_t len)
{
	switch (f) {
	case SLC_FMT_NONE:
		return true;
	case SLC_FMT_DATE_TIME:
		return check_date_time(s, len);
	case SLC_FMT_DATE:
		return check_date(s, len);
	case SLC_FMT_TIME:
		return check_time(s, len);
	case SLC_FMT_EMAIL:
		return check_email(s, len);
	case SLC_FMT_URI:
		return check_uri_ref(s, len, true);
	case SLC_FMT_URI_REFERENCE:
		return check_uri_ref(s, len, false);
	case SLC_FMT_UUID:
		return check_uuid(s, len);
	case SLC_FMT_IPV4:
		return check_ipv4(s, len);
	case SLC_FMT_IPV6:
		return check_ipv6(s, len);
	case SLC_FMT_HOSTNAME:
		return check_hostname(s, len);
	}
	return true;
}
