/*
 * Small containers for the contract module: an arena for the compiled trees
 * (one free at registry end instead of tracking every node through $ref
 * cycles) and two open-addressing hash maps with tombstones, because a
 * failed sl_contracts_add must take its index entries back out.
 */
#include <stdlib.h>
#include <string.h>

#include "contract/contract_int.h"

/* ---- arena ---------------------------------------------------------------- */
#define ARENA_CHUNK (32 * 1024)

struct slc_chunk {
	struct slc_chunk *next;
	size_t used, cap;
	max_align_t data[]; /* keeps every allocation aligned */
};

void *slc_alloc(struct slc_arena *a, size_t n)
{
	const size_t align = sizeof(max_align_t);
	n = (n + align - 1) / align * align;
	if (n == 0)
		n = align;
	struct slc_chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		/* Big requests get a chunk of their own so small ones keep packing. */
		size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
		struct slc_chunk *nc = sl_xmalloc(sizeof(*nc) + cap);
		nc->used = 0;
		nc->cap = cap;
		if (c && n > ARENA_CHUNK / 4) {
			nc->next = c->next; /* keep the partly used chunk in front */
			c->next = nc;
		} else {
			nc->next = c;
			a->head = nc;
		}
		c = nc;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *slc_strndup(struct slc_arena *a, const char *s, size_t n)
{
	char *p = slc_alloc(a, n + 1);
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void slc_arena_free(struct slc_arena *a)
{
	struct slc_chunk *c = a->head;
	while (c) {
		struct slc_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
}

/* ---- hashing ---------------------------------------------------------------- */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t hash_ptr(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;
	x ^= x >> 33; /* murmur3 finaliser: pointers share low zero bits */
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* ---- string map --------------------------------------------------------------- */
static struct slc_sent *smap_find(const struct slc_smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	size_t i = hash_str(key) & (m->cap - 1);
	for (;;) {
		struct slc_sent *e = &m->v[i];
		if (!e->key)
			return NULL;
		if (!e->dead && strcmp(e->key, key) == 0)
			return e;
		i = (i + 1) & (m->cap - 1);
	}
}

static void smap_grow(struct slc_smap *m)
{
	struct slc_smap n = {0};
	n.cap = m->cap ? m->cap * 2 : 16;
	n.v = sl_xcalloc(n.cap, sizeof(*n.v));
	for (size_t i = 0; i < m->cap; i++) {
		struct slc_sent *e = &m->v[i];
		if (!e->key)
			continue;
		if (e->dead) {
			free(e->key);
			continue;
		}
		size_t j = hash_str(e->key) & (n.cap - 1);
		while (n.v[j].key)
			j = (j + 1) & (n.cap - 1);
		n.v[j] = *e;
		n.used++;
	}
	free(m->v);
	*m = n;
}

void *slc_smap_get(const struct slc_smap *m, const char *key)
{
	struct slc_sent *e = smap_find(m, key);
	return e ? e->val : NULL;
}

bool slc_smap_put(struct slc_smap *m, const char *key, void *val)
{
	if (smap_find(m, key))
		return false;
	if ((m->used + 1) * 4 >= m->cap * 3)
		smap_grow(m);
	size_t i = hash_str(key) & (m->cap - 1);
	while (m->v[i].key)
		i = (i + 1) & (m->cap - 1);
	m->v[i].key = sl_strdup(key);
	m->v[i].val = val;
	m->v[i].dead = false;
	m->used++;
	return true;
}

void slc_smap_del(struct slc_smap *m, const char *key)
{
	struct slc_sent *e = smap_find(m, key);
	if (e) {
		e->dead = true; /* the slot stays taken so probe chains hold */
		e->val = NULL;
	}
}

void slc_smap_free(struct slc_smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].key);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- pointer map ---------------------------------------------------------------- */
static const char pmap_dead_key;
#define PMAP_DEAD ((const void *)&pmap_dead_key)

static struct slc_pent *pmap_find(const struct slc_pmap *m, const void *key)
{
	if (!m->cap)
		return NULL;
	size_t i = hash_ptr(key) & (m->cap - 1);
	for (;;) {
		struct slc_pent *e = &m->v[i];
		if (!e->key)
			return NULL;
		if (e->key == key)
			return e;
		i = (i + 1) & (m->cap - 1);
	}
}

static void pmap_grow(struct slc_pmap *m)
{
	struct slc_pmap n = {0};
	n.cap = m->cap ? m->cap * 2 : 64;
	n.v = sl_xcalloc(n.cap, sizeof(*n.v));
	for (size_t i = 0; i < m->cap; i++) {
		struct slc_pent *e = &m->v[i];
		if (!e->key || e->key == PMAP_DEAD)
			continue;
		size_t j = hash_ptr(e->key) & (n.cap - 1);
		while (n.v[j].key)
			j = (j + 1) & (n.cap - 1);
		n.v[j] = *e;
		n.used++;
	}
	free(m->v);
	*m = n;
}

void *slc_pmap_get(const struct slc_pmap *m, const void *key)
{
	struct slc_pent *e = pmap_find(m, key);
	return e ? e->val : NULL;
}

void slc_pmap_put(struct slc_pmap *m, const void *key, void *val)
{
	struct slc_pent *e = pmap_find(m, key);
	if (e) {
		e->val = val;
		return;
	}
	if ((m->used + 1) * 4 >= m->cap * 3)
		pmap_grow(m);
	size_t i = hash_ptr(key) & (m->cap - 1);
	while (m->v[i].key)
		i = (i + 1) & (m->cap - 1);
	m->v[i].key = key;
	m->v[i].val = val;
	m->used++;
}

void slc_pmap_del(struct slc_pmap *m, const void *key)
{
	struct slc_pent *e = pmap_find(m, key);
	if (e) {
		e->key = PMAP_DEAD;
		e->val = NULL;
	}
}

void slc_pmap_free(struct slc_pmap *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- JSON pointer tokens ------------------------------------------------------------ */
void slc_path_push(struct sl_buf *b, const char *tok, size_t len)
{
	sl_buf_addc(b, '/');
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		const char *esc = tok[i] == '~' ? "~0" : tok[i] == '/' ? "~1" : NULL;
		if (!esc)
			continue;
		sl_buf_add(b, tok + start, i - start);
		sl_buf_adds(b, esc);
		start = i + 1;
	}
	sl_buf_add(b, tok + start, len - start);
}
