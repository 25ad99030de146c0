/* fuzz_yaml: every project file is YAML read by sl_yaml_parse, so it must
 * never crash, hang or leak on any input. The input is parsed as one file;
 * when it parses, every value's position is looked up through the location
 * map (as error reporting does), and every string is run through the jq
 * reference tokenizer, which the config loader applies to jq values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "expr/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libfyaml 0.7.12 itself loses a 2 KiB buffer on some flow-mapping syntax
 * errors (reproduced with a bare fy_parser_parse loop, no Sluice code in
 * the way); that is not a leak of ours, so LeakSanitizer skips it. */
const char *__lsan_default_suppressions(void)
{
	return "leak:libfyaml.so\n";
}

static void count_ref(void *ud, const char *name, size_t off)
{
	size_t *n = ud;
	*n += strlen(name) + off;
}

/* Looks up pointer and its children, recursively, the way errors do. */
static void walk(const json_t *v, const struct sl_locmap *m, struct sl_buf *ptr, int depth)
{
	int line = 0, col = 0;
	sl_locmap_find(m, sl_buf_str(ptr), &line, &col);
	sl_locmap_find_key(m, sl_buf_str(ptr), &line, &col);
	if (depth > 64 || ptr->err)
		return;
	size_t len = ptr->len;
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach((json_t *)v, k, c) {
			sl_buf_addc(ptr, '/');
			sl_buf_adds(ptr, k);
			walk(c, m, ptr, depth + 1);
			ptr->len = len;
			if (ptr->p)
				ptr->p[len] = '\0';
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c) {
			sl_buf_printf(ptr, "/%zu", i);
			walk(c, m, ptr, depth + 1);
			ptr->len = len;
			if (ptr->p)
				ptr->p[len] = '\0';
		}
	} else if (json_is_string(v)) {
		size_t n = 0;
		sl_expr_refs(json_string_value(v), count_ref, &n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct sl_diags d = {0};
	struct sl_locmap *m = NULL;
	json_t *doc = sl_yaml_parse(text, size, "fuzz.yaml", &m, &d);
	if (doc) {
		struct sl_buf ptr;
		sl_buf_init(&ptr, 4096);
		walk(doc, m, &ptr, 0);
		sl_buf_free(&ptr);
	}
	/* Raw input through the tokenizer too: jq text is outside input. */
	size_t n = 0;
	sl_expr_refs(text, count_ref, &n);
	json_decref(doc);
	sl_locmap_free(m);
	sl_diags_free(&d);
	free(text);
	return 0;
}
