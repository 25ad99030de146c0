/*
 * contract internals, shared by the files of src/contract/ only.
 *
 * The module turns each JSON Schema document into a tree of `struct slc_node`
 * once (compile.c), keeps the URI / anchor / node indexes that $ref needs
 * (registry.c, uri.c), and walks the compiled tree for every instance
 * (validate.c, format.c). Nothing here is seen outside src/contract/.
 */
#ifndef SL_CONTRACT_INT_H
#define SL_CONTRACT_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "contract/contract.h"

/* Nesting limits. A schema may refer to itself ($ref cycles) and instances
 * come from the network, so both compile and validation are bounded. */
#define SLC_MAX_DEPTH 512     /* compile nesting and validation nesting */
#define SLC_PII_MAX_DEPTH 48  /* x-pii walk through nested schemas */
#define SLC_VERRS_DEFAULT 100 /* sl_verrs.max == 0 */
#define SLC_REGEX_MATCH_LIMIT 1000000u /* backtracking bound against ReDoS */

/* Appends val to a heap array that doubles as it grows (aborts on OOM). */
#define SLC_PUSH(arr, n, cap, val)                                          \
	do {                                                                \
		if ((n) == (cap)) {                                         \
			(cap) = (cap) ? (cap) * 2 : 8;                      \
			(arr) = sl_xrealloc((arr), (cap) * sizeof(*(arr))); \
		}                                                           \
		(arr)[(n)++] = (val);                                       \
	} while (0)

/* ---- arena: compiled trees live until the registry is freed --------------- */
struct slc_chunk;
struct slc_arena {
	struct slc_chunk *head;
};
void *slc_alloc(struct slc_arena *a, size_t n); /* zeroed; aborts on OOM */
char *slc_strndup(struct slc_arena *a, const char *s, size_t n);
void slc_arena_free(struct slc_arena *a);

/* ---- maps with deletion (an add that fails is rolled back) ---------------- */
struct slc_sent {
	char *key; /* owned; NULL = empty */
	void *val;
	bool dead; /* tombstone */
};
struct slc_smap { /* string -> pointer */
	struct slc_sent *v;
	size_t used, cap; /* used counts live and dead slots */
};
void *slc_smap_get(const struct slc_smap *m, const char *key);
/* Copies key. Returns false when key is already present (nothing changes). */
bool slc_smap_put(struct slc_smap *m, const char *key, void *val);
void slc_smap_del(struct slc_smap *m, const char *key);
void slc_smap_free(struct slc_smap *m);

struct slc_pent {
	const void *key; /* NULL = empty, &slc_pmap_dead = tombstone */
	void *val;
};
struct slc_pmap { /* pointer -> pointer */
	struct slc_pent *v;
	size_t used, cap;
};
void *slc_pmap_get(const struct slc_pmap *m, const void *key);
void slc_pmap_put(struct slc_pmap *m, const void *key, void *val); /* replaces */
void slc_pmap_del(struct slc_pmap *m, const void *key);
void slc_pmap_free(struct slc_pmap *m);

/* ---- URIs (uri.c) ----------------------------------------------------------- */
/* RFC 3986 §5.2 reference resolution; returns owned. A base without a scheme
 * (the "NAME@VERSION" ids) resolves like a relative path, so "other@2#/x"
 * against "mine@1" gives "other@2#/x". */
char *slc_uri_resolve(const char *base, const char *ref);
/* Drops a "#..." part; returns owned. */
char *slc_uri_strip_fragment(const char *uri);
/* Decodes %XX escapes into an owned buffer (length in *outlen); NULL when an
 * escape is malformed. */
char *slc_pct_decode(const char *s, size_t n, size_t *outlen);
/* Whether s has an RFC 3986 scheme ("https:", "urn:"). */
bool slc_uri_has_scheme(const char *s);

/* ---- formats (format.c) ----------------------------------------------------- */
enum slc_format {
	SLC_FMT_NONE, /* unknown formats are annotations only */
	SLC_FMT_DATE_TIME,
	SLC_FMT_DATE,
	SLC_FMT_TIME,
	SLC_FMT_EMAIL,
	SLC_FMT_URI,
	SLC_FMT_URI_REFERENCE,
	SLC_FMT_UUID,
	SLC_FMT_IPV4,
	SLC_FMT_IPV6,
	SLC_FMT_HOSTNAME,
};
enum slc_format slc_format_lookup(const char *name);
bool slc_format_check(enum slc_format f, const char *s, size_t len);

/* ---- JSON values (validate.c) ----------------------------------------------- */
/* Deep equality where 1 == 1.0 (JSON Schema's notion for enum/const/unique). */
bool slc_json_equal(const json_t *a, const json_t *b);

/* ---- the compiled tree ------------------------------------------------------ */
struct slc_num {
	bool is_int;
	json_int_t i;
	double d; /* always set */
};

struct slc_regex {
	pcre2_code *code;
	const char *src; /* for messages; arena */
};

struct slc_node;

struct slc_prop {
	const char *name; /* arena; may hold NUL bytes */
	size_t len;
	struct slc_node *s;
};
struct slc_pprop {
	struct slc_regex rx;
	struct slc_node *s;
};
struct slc_depreq {
	const char *name;
	size_t len;
	const char **req; /* names; lengths in reqlen */
	size_t *reqlen;
	size_t nreq;
};

/* A schema resource: a document root or a subschema with its own "$id". */
struct slc_dynanchor {
	const char *name;
	json_t *js;
	struct slc_node *s; /* set at commit */
};
struct slc_res {
	const char *uri; /* absolute, no fragment; arena */
	json_t *js;      /* the resource's root schema (borrowed from the doc) */
	const char *source; /* the document's file, for diagnostics */
	struct slc_dynanchor *dyn;
	size_t ndyn, capdyn; /* heap array */
	struct sl_schema *handle;
};

/* Type bits. */
enum {
	SLC_T_NULL = 1u << 0,
	SLC_T_BOOLEAN = 1u << 1,
	SLC_T_OBJECT = 1u << 2,
	SLC_T_ARRAY = 1u << 3,
	SLC_T_NUMBER = 1u << 4,
	SLC_T_STRING = 1u << 5,
	SLC_T_INTEGER = 1u << 6,
};

/* Presence bits for keywords whose value alone cannot say "absent". */
enum {
	SLC_K_TYPE = 1u << 0,
	SLC_K_ENUM = 1u << 1,
	SLC_K_CONST = 1u << 2,
	SLC_K_MULTIPLE = 1u << 3,
	SLC_K_MAXIMUM = 1u << 4,
	SLC_K_EXMAX = 1u << 5,
	SLC_K_MINIMUM = 1u << 6,
	SLC_K_EXMIN = 1u << 7,
	SLC_K_MAXLEN = 1u << 8,
	SLC_K_MINLEN = 1u << 9,
	SLC_K_MAXITEMS = 1u << 10,
	SLC_K_MINITEMS = 1u << 11,
	SLC_K_UNIQUE = 1u << 12,
	SLC_K_MAXCONT = 1u << 13,
	SLC_K_MINCONT = 1u << 14,
	SLC_K_MAXPROPS = 1u << 15,
	SLC_K_MINPROPS = 1u << 16,
	SLC_K_PATTERN = 1u << 17,
	SLC_K_FORMAT = 1u << 18,
	SLC_K_REQUIRED = 1u << 19,
	SLC_K_DEPREQ = 1u << 20,
	SLC_K_DEPSCH = 1u << 21,
	SLC_K_PROPS = 1u << 22, /* properties, patternProperties or additionalProperties */
	SLC_K_PROPNAMES = 1u << 23,
	SLC_K_ITEMS = 1u << 24, /* prefixItems or items */
	SLC_K_CONTAINS = 1u << 25,
};
/* Keyword groups, so validation skips whole families with one test. */
#define SLC_K_NUMERIC (SLC_K_MULTIPLE | SLC_K_MAXIMUM | SLC_K_EXMAX | SLC_K_MINIMUM | SLC_K_EXMIN)
#define SLC_K_STRING (SLC_K_MAXLEN | SLC_K_MINLEN | SLC_K_PATTERN | SLC_K_FORMAT)
#define SLC_K_ARRAY \
	(SLC_K_MAXITEMS | SLC_K_MINITEMS | SLC_K_UNIQUE | SLC_K_ITEMS | SLC_K_CONTAINS)
#define SLC_K_OBJECT                                                                 \
	(SLC_K_MAXPROPS | SLC_K_MINPROPS | SLC_K_REQUIRED | SLC_K_DEPREQ | SLC_K_DEPSCH | \
	 SLC_K_PROPS | SLC_K_PROPNAMES)

struct slc_node {
	uint32_t flags; /* SLC_K_* */
	bool is_bool, bool_val;
	bool pii; /* "x-pii": true */
	unsigned types;
	const struct slc_res *res; /* the resource this schema belongs to */
	const json_t *js;          /* the schema JSON (borrowed from its doc) */

	const json_t *enum_v, *const_v;
	struct slc_num multiple, maximum, exmax, minimum, exmin;
	size_t max_len, min_len, max_items, min_items, max_contains, min_contains;
	size_t max_props, min_props;
	struct slc_regex pattern;
	enum slc_format format;
	const char *format_name;

	struct slc_node **prefix;
	size_t nprefix;
	struct slc_node *items, *contains, *uneval_items;

	struct slc_prop *props; /* sorted by (len, bytes) for bsearch */
	size_t nprops;
	struct slc_pprop *pprops;
	size_t npprops;
	struct slc_node *addl, *uneval_props, *prop_names;
	struct slc_prop *required; /* .s unused */
	size_t nrequired;
	struct slc_depreq *depreq;
	size_t ndepreq;
	struct slc_prop *depsch;
	size_t ndepsch;

	struct slc_node **all_of, **any_of, **one_of;
	size_t nall_of, nany_of, none_of;
	struct slc_node *not_, *if_, *then_, *else_;

	const char *ref_uri; /* absolute; NULL when no $ref */
	struct slc_node *ref; /* resolved at link time */
	const char *dref_uri; /* $dynamicRef, absolute */
	struct slc_node *dref; /* static target */
	const char *dyn_name;  /* set when the static target is a matching $dynamicAnchor */
};

/* The two boolean schemas, shared (jansson's true/false are singletons too). */
extern struct slc_node slc_node_true, slc_node_false;

struct slc_doc {
	json_t *js;     /* own reference */
	char *source;   /* heap */
	const char *id; /* "$id" as written, arena; NULL when anonymous */
	const char *base;
	struct slc_node *root;
	struct slc_res **res; /* resources of this document (heap array) */
	size_t nres;
};

struct slc_undo {
	struct slc_smap *sm;
	char *skey; /* heap */
	struct slc_pmap *pm;
	const void *pkey;
};

struct slc_anchor {
	json_t *js;
	struct slc_res *res;
	bool dynamic;
};

struct sl_schema {
	struct slc_node *root;
	const json_t *js;
	const char *id; /* "" when anonymous */
	char **pii;     /* NULL-terminated, heap */
	struct sl_contracts *reg;
};

struct sl_contracts {
	struct slc_arena arena;
	struct slc_doc **docs;
	size_t ndocs, capdocs;
	struct slc_smap res;     /* uri -> struct slc_res */
	struct slc_smap anchors; /* uri#name -> struct slc_anchor */
	struct slc_pmap loc;     /* schema json_t* -> its struct slc_res (after its own $id) */
	struct slc_pmap nodes;   /* json_t* -> struct slc_node (compiled) */
	struct slc_smap handles; /* id or uri -> struct sl_schema */
	struct sl_schema **hlist;
	size_t nh, caph;
	const char **ids; /* NULL-terminated, heap; strings in the arena */
	size_t nids;
	struct slc_node **pending; /* nodes whose $ref / $dynamicRef is unresolved */
	size_t npending, cappending;
	pcre2_code **codes;
	size_t ncodes, capcodes;
	struct slc_undo *undo; /* non-NULL while an add may still fail */
	size_t nundo, capundo;
	bool undo_on;
	pcre2_compile_context *ccx;
	pcre2_match_context *mcx;
	bool format_assert;
	unsigned anon_seq;
};

/* ---- registry helpers used by compile.c -------------------------------------- */
/* Map insertions that are undone when the add in progress fails. */
void slc_reg_put_node(struct sl_contracts *r, const json_t *js, struct slc_node *s);
void slc_reg_add_code(struct sl_contracts *r, pcre2_code *code);
void slc_reg_add_pending(struct sl_contracts *r, struct slc_node *s);

/* Compiles js (and every subschema under it) into a node; the result is
 * cached by JSON node. fallback is the resource to use for a node that the
 * index walk did not visit (a $ref into a non-schema location). where names
 * the schema in error messages ("inbound_email@1"), spath its pointer. */
struct slc_node *slc_compile(struct sl_contracts *r, json_t *js, struct slc_res *fallback,
			     const char *where, const char *spath, const char *source,
			     struct sl_err *err);

/* Compiles a regex the ECMA-262 way as far as PCRE2 allows; NULL + msg on error. */
pcre2_code *slc_regex_compile(struct sl_contracts *r, const char *src, size_t len, char *msg,
			      size_t msgsz);
/* Unanchored search; -1 when PCRE2 gave up (match limit), else 0/1. */
int slc_regex_search(const struct sl_contracts *r, const pcre2_code *code,
		     pcre2_match_data **md, const char *s, size_t len);

/* The keywords whose values are schemas (one table for the index walk, the
 * compiler and the x-pii walk). */
enum slc_sub_kind { SLC_SUB_ONE, SLC_SUB_ARRAY, SLC_SUB_MAP };
struct slc_subkw {
	const char *name;
	enum slc_sub_kind kind;
};
extern const struct slc_subkw slc_subkws[];
extern const size_t slc_nsubkws;

/* Appends "/" + the escaped token (~0 ~1) to a path buffer. */
void slc_path_push(struct sl_buf *b, const char *tok, size_t len);

#endif
