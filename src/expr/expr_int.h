/*
 * expr_int.h: private to src/expr/.
 */
#ifndef SL_EXPR_INT_H
#define SL_EXPR_INT_H

#include <stddef.h>

/* What the jq tokenizer reports. Every callback may be NULL. name is valid
 * during the call only; off is a byte offset in the source. */
struct expr_scan_cb {
	void (*ref_fn)(void *ud, const char *name, size_t off);         /* root field access */
	void (*var_fn)(void *ud, const char *name, size_t len, size_t off); /* $name */
	void (*keyword_fn)(void *ud, const char *kw, size_t len, size_t off); /* if, import, ... */
	void *ud;
};
void expr_scan(const char *src, const struct expr_scan_cb *cb);

#endif
