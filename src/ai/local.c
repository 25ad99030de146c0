/*
 * local.c: the `local` provider: built-in specialist models that need no
 * network (a linear text classifier, pattern extractors). Residency local.
 * The models themselves arrive with local_classifier.c / local_extract.c.
 */
#include "ai/provider.h"

static const struct sl_conf_key local_keys[] = {
	{"type", SL_CONF_STRING, true, "openai, anthropic or local"},
	{"residency", SL_CONF_STRING, false, "local (the default here)"},
	{"breaker", SL_CONF_OBJECT, false, "{failures: N, cooldown: 30s}"},
	{NULL, 0, false, NULL},
};

static int local_init(struct ai_provider *p, const json_t *cfg, struct sl_conf_ctx *ctx, const char *pointer)
{
	(void)p, (void)cfg, (void)ctx, (void)pointer;
	return 0;
}

static bool local_can(const struct ai_provider *p, const char *model, enum sl_ai_task task)
{
	(void)p, (void)model;
	return task == SL_AI_CLASSIFY || task == SL_AI_EXTRACT || task == SL_AI_ROUTE;
}

static int local_call(struct ai_provider *p, const struct ai_call_in *in, struct ai_call_out *out, struct sl_err *err)
{
	(void)p, (void)in, (void)out;
	return sl_err_set(err, SL_ESTEP, SL_CLASS_PERMANENT, "local models are not built into this binary yet");
}

const struct ai_provider_type ai_local_type = {
	.name = "local",
	.external = false,
	.keys = local_keys,
	.init_fn = local_init,
	.can_fn = local_can,
	.call_fn = local_call,
	.free_fn = NULL,
};
