/* fuzz_jqrefs: the jq tokenizer that finds which steps an expression reads
 * (user-written jq from workflow files). Must never crash or read past the
 * input, and every reported offset must point at a '.' inside it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	const char *src;
	size_t len;
};

static void on_ref(void *ud, const char *name, size_t offset)
{
	struct ctx *c = ud;
	if (offset >= c->len || c->src[offset] != '.' || !name)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct ctx c = {s, strlen(s)};
	sl_expr_refs(s, on_ref, &c);
	free(s);
	return 0;
}
