/*
 * cache.c: the response cache: key (a SHA-256 hex of model, prompt
 * template hash and redacted input) -> answer, with an expiry, bounded by
 * entry count. When full, the oldest insertion goes first (a FIFO ring:
 * answers are small and the TTL does most of the work).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_int.h"

struct ai_cache {
	pthread_mutex_t mu;
	json_t *map;   /* key -> [expires_ms, value] */
	char **ring;   /* keys in insertion order */
	size_t cap, head, n;
};

struct ai_cache *ai_cache_new(size_t max_entries)
{
	struct ai_cache *c = sl_xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->mu, NULL);
	c->map = json_object();
	c->cap = max_entries ? max_entries : 1;
	c->ring = sl_xcalloc(c->cap, sizeof *c->ring);
	return c;
}

void ai_cache_free(struct ai_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->cap; i++)
		free(c->ring[i]);
	free(c->ring);
	json_decref(c->map);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

json_t *ai_cache_get(struct ai_cache *c, const char *key, int64_t now_ms)
{
	pthread_mutex_lock(&c->mu);
	json_t *e = json_object_get(c->map, key);
	json_t *v = NULL;
	if (e && json_integer_value(json_array_get(e, 0)) > now_ms)
		v = json_incref(json_array_get(e, 1));
	pthread_mutex_unlock(&c->mu);
	return v;
}

void ai_cache_put(struct ai_cache *c, const char *key, json_t *value, int64_t expires_ms)
{
	pthread_mutex_lock(&c->mu);
	if (!json_object_get(c->map, key)) {
		if (c->n == c->cap) { /* evict the oldest */
			json_object_del(c->map, c->ring[c->head]);
			free(c->ring[c->head]);
			c->ring[c->head] = NULL;
			c->head = (c->head + 1) % c->cap;
			c->n--;
		}
		c->ring[(c->head + c->n) % c->cap] = sl_strdup(key);
		c->n++;
	}
	json_object_set_new(c->map, key, json_pack("[I, O]", (json_int_t)expires_ms, value));
	pthread_mutex_unlock(&c->mu);
}
