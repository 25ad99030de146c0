/*
 * outbound.c: which destinations a connector may reach (DESIGN.md §7,
 * outbound safety).
 *
 * Three parts: a classifier of IP addresses (loopback, private, link-local,
 * metadata, ...; an IPv4 address carried inside IPv6 is judged as that IPv4
 * address), the `allow_hosts` list (host names, *.suffix, IP addresses and
 * CIDRs), and the verdict that combines both for one connection.
 *
 * The verdict is meant to be asked about the address a socket is about to
 * connect to (http.c's open-socket callback), never about a URL's text:
 * curl and the resolver have by then turned every spelling of a host
 * (2130706433, 0x7f000001, 0177.0.0.1, 127.1, [::ffff:7f00:1], a DNS name)
 * into the one address that will be used, so there is no encoding to miss
 * and no second DNS answer to race against.
 */
#include "connector/connector.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define ALLOW_HOSTS_MAX 256   /* entries of one list */
#define HOST_NAME_MAX_LEN 253 /* RFC 1035 */

/* ---- classifying an address --------------------------------------------------------- */

static const char *const class_names[] = {
	[SL_ADDR_PUBLIC] = "a public address",
	[SL_ADDR_LOOPBACK] = "a loopback address",
	[SL_ADDR_PRIVATE] = "a private address",
	[SL_ADDR_SHARED] = "a private (carrier-grade NAT, 100.64.0.0/10) address",
	[SL_ADDR_UNIQUE_LOCAL] = "a private (unique-local, fc00::/7) address",
	[SL_ADDR_LINK_LOCAL] = "a link-local address",
	[SL_ADDR_METADATA] = "a cloud metadata endpoint",
	[SL_ADDR_UNSPECIFIED] = "an unspecified address (it reaches this host)",
	[SL_ADDR_MULTICAST] = "a multicast or broadcast address",
	[SL_ADDR_RESERVED] = "a reserved address",
};

const char *sl_addr_class_name(enum sl_addr_class c)
{
	if ((unsigned)c >= SL_ARRAY_LEN(class_names) || !class_names[c])
		return "an unknown kind of address";
	return class_names[c];
}

static enum sl_addr_class v4_class(const unsigned char a[4])
{
	if (a[0] == 169 && a[1] == 254 && ((a[2] == 169 && a[3] == 254) || (a[2] == 170 && a[3] == 2)))
		return SL_ADDR_METADATA; /* AWS/GCP/Azure/OCI metadata, AWS ECS task metadata */
	if (a[0] == 100 && a[1] == 100 && a[2] == 100 && a[3] == 200)
		return SL_ADDR_METADATA; /* Alibaba Cloud metadata */
	if (a[0] == 169 && a[1] == 254)
		return SL_ADDR_LINK_LOCAL;
	if (a[0] == 0)
		return SL_ADDR_UNSPECIFIED; /* 0.0.0.0/8: "this network"; Linux connects 0.0.0.0 to itself */
	if (a[0] == 127)
		return SL_ADDR_LOOPBACK;
	if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168))
		return SL_ADDR_PRIVATE; /* RFC 1918 */
	if (a[0] == 100 && (a[1] & 0xc0) == 64)
		return SL_ADDR_SHARED; /* RFC 6598 */
	if (a[0] == 192 && a[1] == 0 && a[2] == 0)
		return SL_ADDR_RESERVED; /* 192.0.0.0/24, IETF protocol assignments */
	if (a[0] >= 224 && a[0] <= 239)
		return SL_ADDR_MULTICAST;
	if (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255)
		return SL_ADDR_MULTICAST; /* limited broadcast */
	if (a[0] >= 240)
		return SL_ADDR_RESERVED;
	return SL_ADDR_PUBLIC;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static enum sl_addr_class v6_class(const unsigned char a[16])
{
	static const unsigned char ec2[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
	if (all_zero(a, 15) && a[15] == 0)
		return SL_ADDR_UNSPECIFIED; /* :: */
	if (all_zero(a, 15) && a[15] == 1)
		return SL_ADDR_LOOPBACK; /* ::1 */
	/* An IPv4 address in IPv6 clothing is still that address: mapped
	 * (::ffff:a.b.c.d, which Linux connects over IPv4), NAT64 (64:ff9b::/96
	 * and the local-use 64:ff9b:1::/48, RFC 8215) and 6to4 (2002::/16). */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || memcmp(a, nat64_local, 6) == 0)
		return v4_class(a + 12);
	if (all_zero(a, 12)) {
		/* ::a.b.c.d, IPv4-compatible (deprecated by RFC 4291): never a
		 * legitimate destination, whatever it embeds. */
		enum sl_addr_class c = v4_class(a + 12);
		return c == SL_ADDR_PUBLIC ? SL_ADDR_RESERVED : c;
	}
	if (a[0] == 0x20 && a[1] == 0x02) {
		enum sl_addr_class c = v4_class(a + 2);
		if (c != SL_ADDR_PUBLIC)
			return c;
	}
	if (memcmp(a, ec2, 16) == 0)
		return SL_ADDR_METADATA; /* fd00:ec2::254, the EC2 IPv6 metadata endpoint */
	if ((a[0] & 0xfe) == 0xfc)
		return SL_ADDR_UNIQUE_LOCAL; /* fc00::/7 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return SL_ADDR_LINK_LOCAL; /* fe80::/10 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return SL_ADDR_PRIVATE; /* fec0::/10, site-local (deprecated) */
	if (a[0] == 0xff)
		return SL_ADDR_MULTICAST;
	return SL_ADDR_PUBLIC;
}

enum sl_addr_class sl_addr_classify(int family, const void *addr)
{
	if (family == AF_INET)
		return v4_class(addr);
	if (family == AF_INET6)
		return v6_class(addr);
	return SL_ADDR_RESERVED; /* not an IP address: nothing to connect to */
}

bool sl_addr_forbidden(int family, const void *addr)
{
	enum sl_addr_class c = sl_addr_classify(family, addr);
	return c == SL_ADDR_LINK_LOCAL || c == SL_ADDR_METADATA;
}

/* Names that reach a metadata service without looking like an address. */
static const char *const metadata_names[] = {
	"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
	NULL,
};

/* Compares a host with a name, ignoring case and one trailing dot on either. */
static bool host_equal(const char *host, size_t hlen, const char *name)
{
	size_t nlen = strlen(name);
	if (hlen && host[hlen - 1] == '.')
		hlen--;
	if (nlen && name[nlen - 1] == '.')
		nlen--;
	return hlen == nlen && strncasecmp(host, name, hlen) == 0;
}

bool sl_host_is_metadata(const char *host)
{
	if (!host)
		return false;
	for (size_t i = 0; metadata_names[i]; i++)
		if (host_equal(host, strlen(host), metadata_names[i]))
			return true;
	return false;
}

/* ---- allow_hosts ---------------------------------------------------------------------- */

enum allow_kind { ALLOW_NAME, ALLOW_SUFFIX, ALLOW_NET };

struct sl_allow_entry {
	enum allow_kind kind;
	char *name;              /* NAME: "helpdesk.internal"; SUFFIX: ".example.com"; lower case, no final dot */
	int family;              /* NET: AF_INET or AF_INET6 */
	unsigned char addr[16];  /* NET: network address */
	int prefix;              /* NET: prefix length */
};

static bool label_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
	       ch == '_';
}

/* A DNS name: labels of letters, digits, - and _, separated by dots, one
 * trailing dot allowed, and a last label that is not all digits (that would
 * be a number curl reads as an IPv4 address). */
static bool host_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n && s[n - 1] == '.')
		n--;
	if (n == 0 || n > HOST_NAME_MAX_LEN)
		return false;
	size_t label = 0;
	bool digits_only = true;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
			digits_only = true;
			continue;
		}
		if (!label_char(s[i]))
			return false;
		if (s[i] < '0' || s[i] > '9')
			digits_only = false;
		label++;
	}
	return label > 0 && label <= 63 && !digits_only;
}

static char *lower_name(const char *s)
{
	size_t n = strlen(s);
	if (n && s[n - 1] == '.')
		n--;
	char *out = sl_strndup(s, n);
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return out;
}

/* Parses an IP literal (brackets allowed around IPv6) into e. */
static bool parse_ip(const char *s, size_t n, struct sl_allow_entry *e)
{
	char text[INET6_ADDRSTRLEN + 2];
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof text)
		return false;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(e->addr, 0, sizeof e->addr);
	if (inet_pton(AF_INET, text, e->addr) == 1) {
		e->family = AF_INET;
		e->prefix = 32;
		return true;
	}
	if (inet_pton(AF_INET6, text, e->addr) == 1) {
		e->family = AF_INET6;
		e->prefix = 128;
		return true;
	}
	return false;
}

static bool in_prefix(const unsigned char *a, const unsigned char *net, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, net, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

/* out = e's address with the bits past its prefix cleared. */
static void network_of(const struct sl_allow_entry *e, unsigned char out[16])
{
	int full = e->prefix / 8, rest = e->prefix % 8;
	memset(out, 0, 16);
	memcpy(out, e->addr, (size_t)full);
	if (rest)
		out[full] = (unsigned char)(e->addr[full] & (0xff << (8 - rest)));
}

/* Parses "10.0.0.0/8" or "fd00::/8"; reports at p. */
static bool parse_cidr(struct sl_conf_ctx *ctx, const char *p, const char *s, struct sl_allow_entry *e)
{
	const char *slash = strchr(s, '/');
	if (!parse_ip(s, (size_t)(slash - s), e)) {
		sl_conf_error(ctx, p, "\"%s\" is not a CIDR: \"%.*s\" is not an IP address", s, (int)(slash - s), s);
		return false;
	}
	const char *d = slash + 1;
	int max = e->family == AF_INET ? 32 : 128, prefix = 0;
	size_t nd = strspn(d, "0123456789");
	for (size_t i = 0; i < nd && i < 4; i++)
		prefix = prefix * 10 + (d[i] - '0');
	if (nd == 0 || nd > 3 || d[nd] != '\0' || prefix > max) {
		sl_conf_error(ctx, p, "\"%s\" is not a CIDR: the prefix length must be 0 to %d", s, max);
		return false;
	}
	e->prefix = prefix;
	unsigned char network[16];
	network_of(e, network);
	if (memcmp(network, e->addr, 16) != 0) {
		char net[INET6_ADDRSTRLEN];
		inet_ntop(e->family, network, net, sizeof net);
		sl_conf_error(ctx, p, "\"%s\" has bits set past its /%d prefix (did you mean \"%s/%d\"?)", s, prefix,
			      net, prefix);
		return false;
	}
	return true;
}

/* ::ffff:a.b.c.d/N (N >= 96) is the IPv4 network a.b.c.d/(N-96): kept in
 * that form, so that it matches whichever way the address is connected. */
static void unmap(struct sl_allow_entry *e)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (e->family != AF_INET6 || e->prefix < 96 || memcmp(e->addr, mapped, 12) != 0)
		return;
	memmove(e->addr, e->addr + 12, 4);
	memset(e->addr + 4, 0, 12);
	e->family = AF_INET;
	e->prefix -= 96;
}

/* One entry; false after reporting at p. */
static bool parse_entry(struct sl_conf_ctx *ctx, const char *p, const json_t *v, struct sl_allow_entry *e)
{
	static const char what[] = "a host name, *.domain, an IP address or a CIDR such as 10.0.0.0/8";
	const char *s = json_string_value(v);
	if (!s) {
		/* YAML reads 127.1 or 10 as a number: quoting fixes it. */
		sl_conf_error(ctx, p, "an allow_hosts entry must be a string (%s)%s", what,
			      json_is_number(v) ? "; quote it" : "");
		return false;
	}
	if (!*s || strlen(s) > HOST_NAME_MAX_LEN + 2) {
		sl_conf_error(ctx, p, "an allow_hosts entry must be %s, not \"%.64s\"", what, s);
		return false;
	}
	memset(e, 0, sizeof *e);
	const char *scheme = strstr(s, "://");
	if (scheme) {
		const char *h = scheme + 3;
		sl_conf_error(ctx, p, "\"%s\" is a URL: write only its host (%.*s)", s, (int)strcspn(h, "/:?#"), h);
		return false;
	}
	if (strchr(s, '/')) {
		e->kind = ALLOW_NET;
		if (!parse_cidr(ctx, p, s, e))
			return false;
		unmap(e);
		return true;
	}
	if (parse_ip(s, strlen(s), e)) {
		e->kind = ALLOW_NET;
		unmap(e);
		return true;
	}
	/* 127.1, 0x7f000001, 2130706433: an address curl would accept, but
	 * written so that a reader may not recognise it. */
	struct in_addr loose;
	if (inet_aton(s, &loose)) {
		char dotted[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &loose, dotted, sizeof dotted);
		sl_conf_error(ctx, p, "\"%s\" is the IPv4 address %s: write it as %s", s, dotted, dotted);
		return false;
	}
	if (s[0] == '*') {
		if (s[1] != '.' || !host_name_ok(s + 2)) {
			sl_conf_error(ctx, p, "\"%s\": a wildcard must be *.domain, such as *.example.com", s);
			return false;
		}
		e->kind = ALLOW_SUFFIX;
		e->name = lower_name(s + 1); /* keeps the leading dot */
		return true;
	}
	if (!host_name_ok(s)) {
		sl_conf_error(ctx, p, "\"%s\" is not %s", s, what);
		return false;
	}
	e->kind = ALLOW_NAME;
	e->name = lower_name(s);
	return true;
}

int sl_allow_list_parse(struct sl_conf_ctx *ctx, const json_t *arr, const char *pointer, struct sl_allow_list *out)
{
	memset(out, 0, sizeof *out);
	if (!arr)
		return 0;
	int before = ctx->nerrors;
	if (!json_is_array(arr))
		return 0; /* the key check reported the type */
	size_t n = json_array_size(arr);
	if (n > ALLOW_HOSTS_MAX) {
		sl_conf_error(ctx, pointer, "allow_hosts holds %zu entries (at most %d): use CIDRs or *.domain", n,
			      ALLOW_HOSTS_MAX);
		return ctx->nerrors - before;
	}
	out->v = sl_xcalloc(n ? n : 1, sizeof *out->v);
	for (size_t i = 0; i < n; i++) {
		char p[SL_CONF_PTR_MAX], idx[24];
		snprintf(idx, sizeof idx, "%zu", i);
		sl_conf_ptr(p, pointer, idx);
		struct sl_allow_entry e;
		if (parse_entry(ctx, p, json_array_get(arr, i), &e))
			out->v[out->n++] = e;
	}
	return ctx->nerrors - before;
}

void sl_allow_list_free(struct sl_allow_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool sl_allow_list_has_name(const struct sl_allow_list *l, const char *host, bool exact_only)
{
	if (!l || !host || !*host)
		return false;
	size_t hlen = strlen(host);
	if (hlen && host[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < l->n; i++) {
		const struct sl_allow_entry *e = &l->v[i];
		if (e->kind == ALLOW_NAME && host_equal(host, hlen, e->name))
			return true;
		if (e->kind == ALLOW_SUFFIX && !exact_only) {
			size_t sl = strlen(e->name); /* ".example.com" */
			if (hlen > sl && strncasecmp(host + hlen - sl, e->name, sl) == 0)
				return true;
		}
	}
	return false;
}

bool sl_allow_list_has_addr(const struct sl_allow_list *l, int family, const void *addr)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (!l || !addr)
		return false;
	const unsigned char *a = addr;
	/* ::ffff:a.b.c.d is the IPv4 address a.b.c.d on the wire: a v4 entry
	 * covers it. */
	const unsigned char *v4 = family == AF_INET ? a : (family == AF_INET6 && memcmp(a, mapped, 12) == 0 ? a + 12 : NULL);
	for (size_t i = 0; i < l->n; i++) {
		const struct sl_allow_entry *e = &l->v[i];
		if (e->kind != ALLOW_NET)
			continue;
		if (e->family == AF_INET && v4 && in_prefix(v4, e->addr, e->prefix))
			return true;
		if (e->family == AF_INET6 && family == AF_INET6 && in_prefix(a, e->addr, e->prefix))
			return true;
	}
	return false;
}

/* ---- the verdict ---------------------------------------------------------------------- */

enum sl_addr_class sl_outbound_check(const struct sl_allow_list *allow, bool allow_link_local, const char *host,
				     int family, const void *addr)
{
	enum sl_addr_class c = sl_addr_classify(family, addr);
	if (c == SL_ADDR_PUBLIC)
		return SL_ADDR_PUBLIC;
	if (allow_link_local && (c == SL_ADDR_LINK_LOCAL || c == SL_ADDR_METADATA))
		return SL_ADDR_PUBLIC;
	if (sl_allow_list_has_addr(allow, family, addr))
		return SL_ADDR_PUBLIC;
	/* A name vouches for whatever it resolves to, except a metadata
	 * endpoint: that must be listed by address. */
	if (c != SL_ADDR_METADATA && sl_allow_list_has_name(allow, host, false))
		return SL_ADDR_PUBLIC;
	return c;
}

bool sl_outbound_name_refused(const struct sl_allow_list *allow, bool allow_link_local, const char *host)
{
	if (!sl_host_is_metadata(host) || allow_link_local)
		return false;
	return !sl_allow_list_has_name(allow, host, true); /* a wildcard never covers these */
}
