/*
 * test_policy.c: policy rules (src/gov/policy.h): parsing with FILE:LINE:COL
 * errors, subject and target matching, fields, jq conditions (a failing one
 * fails closed), precedence (deny > require_approval > allow > default),
 * the unused-rule check, autonomy levels and the signal table that demotes
 * them (src/gov/signal.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gov/policy.h"
#include "gov/signal.h"

struct collect {
	struct sl_locmap *locs;
	char msgs[8][256];
	int lines[8];
	int n;
};

static void report(struct sl_conf_ctx *ctx, const char *pointer, const char *msg)
{
	struct collect *c = ctx->ud;
	int line = 0, col = 0;
	sl_locmap_find(c->locs, pointer, &line, &col);
	if (c->n < 8) {
		snprintf(c->msgs[c->n], sizeof c->msgs[c->n], "%s", msg);
		c->lines[c->n] = line;
		c->n++;
	}
}

static void locate(struct sl_conf_ctx *ctx, const char *pointer, int *line, int *col)
{
	struct collect *c = ctx->ud;
	sl_locmap_find(c->locs, pointer, line, col);
}

/* Parses YAML text into a policy; errors land in c. */
static struct sl_policy *load(const char *yaml, struct collect *c)
{
	memset(c, 0, sizeof *c);
	struct sl_diags d = {0};
	json_t *doc = sl_yaml_parse(yaml, strlen(yaml), "policies.yaml", &c->locs, &d);
	assert_int_equal(d.n, 0);
	struct sl_conf_ctx ctx = {.file = "policies.yaml", .report_fn = report, .locate_fn = locate, .ud = c};
	struct sl_policy *p = sl_policy_parse(doc, &ctx);
	json_decref(doc);
	sl_diags_free(&d);
	return p;
}

static void done(struct sl_policy *p, struct collect *c)
{
	sl_policy_free(p);
	sl_locmap_free(c->locs);
}

static const char *const agent_names[] = {"workflow:refunds", "agent:refunds/decide", NULL};
static const char *const svc_names[] = {"service:billing", "role:operator", NULL};

static enum sl_policy_decision ask(const struct sl_policy *p, const char *const *who, enum sl_policy_verb verb,
				   const char *target, const char *input_json, const char **rule)
{
	json_t *input = input_json ? json_loads(input_json, 0, NULL) : json_object();
	json_t *doc = json_pack("{s:s, s:O}", "action", target, "input", input);
	struct sl_policy_query q = {.subject = {who}, .verb = verb, .target = target, .fields = input, .doc = doc};
	struct sl_policy_result res;
	enum sl_policy_decision d = sl_policy_eval(p, &q, &res);
	static char last[128];
	snprintf(last, sizeof last, "%s", res.rule);
	if (rule)
		*rule = last;
	sl_policy_result_free(&res);
	json_decref(doc);
	json_decref(input);
	return d;
}

static const char *RULES = "rules:\n"
			   "  - id: small-refunds\n"
			   "    who: agent:refunds/*\n"
			   "    what: write\n"
			   "    on: erp.refunds.*\n"
			   "    decision: allow\n"
			   "  - id: big-refunds\n"
			   "    who: agent\n"
			   "    what: [write]\n"
			   "    on: erp.refunds.*\n"
			   "    when: '.input.amount > 100'\n"
			   "    decision: require_approval\n"
			   "    reviewers: [role:finance]\n"
			   "  - id: no-deletes\n"
			   "    who: '*'\n"
			   "    what: write\n"
			   "    on: [erp.*.delete]\n"
			   "    decision: deny\n"
			   "  - id: no-email\n"
			   "    who: agent\n"
			   "    what: read\n"
			   "    fields: [email]\n"
			   "    decision: deny\n"
			   "tenants: {acme: {}}\n"; /* another parser's key: left alone */

static void test_parse_ok(void **state)
{
	(void)state;
	struct collect c;
	struct sl_policy *p = load(RULES, &c);
	assert_int_equal(c.n, 0);
	assert_int_equal(p->nrules, 4);
	assert_string_equal(p->rules[1].id, "big-refunds");
	assert_int_equal(p->rules[1].line, 7);
	assert_int_equal(p->rules[1].decision, SL_DECIDE_REQUIRE_APPROVAL);
	assert_non_null(p->rules[1].when);
	assert_string_equal(p->rules[3].on[0], "*");
	done(p, &c);
}

static void test_parse_errors(void **state)
{
	(void)state;
	struct collect c;
	struct sl_policy *p = load("rules:\n"
				   "  - id: a\n"
				   "    who: bob\n"           /* no kind: user:bob */
				   "    what: erase\n"        /* no such verb */
				   "    decision: maybe\n"    /* no such decision */
				   "  - id: a\n"              /* twice */
				   "    who: user:bob\n"
				   "    what: read\n"
				   "    when: '.input |||'\n" /* jq that does not compile */
				   "    decision: allow\n"
				   "    reviewers: [x]\n",    /* only for require_approval */
				   &c);
	assert_true(c.n >= 6);
	assert_non_null(strstr(c.msgs[0], "who 'bob' is not a subject"));
	assert_int_equal(c.lines[0], 3);
	assert_non_null(strstr(c.msgs[1], "what 'erase'"));
	assert_int_equal(c.lines[1], 4);
	assert_non_null(strstr(c.msgs[2], "decision 'maybe'"));
	assert_non_null(strstr(c.msgs[3], "used twice"));
	assert_int_equal(c.lines[3], 6);
	bool jq = false, rev = false;
	for (int i = 4; i < c.n; i++) {
		jq = jq || c.lines[i] == 9;
		rev = rev || strstr(c.msgs[i], "reviewers are for") != NULL;
	}
	assert_true(jq);
	assert_true(rev);
	done(p, &c);
}

static void test_precedence(void **state)
{
	(void)state;
	struct collect c;
	struct sl_policy *p = load(RULES, &c);
	const char *rule;
	/* allow alone */
	assert_int_equal(ask(p, agent_names, SL_VERB_WRITE, "erp.refunds.create", "{\"amount\": 50}", &rule),
			 SL_DECIDE_ALLOW);
	assert_string_equal(rule, "small-refunds");
	/* the jq condition adds require_approval, which beats allow */
	assert_int_equal(ask(p, agent_names, SL_VERB_WRITE, "erp.refunds.create", "{\"amount\": 500}", &rule),
			 SL_DECIDE_REQUIRE_APPROVAL);
	assert_string_equal(rule, "big-refunds");
	/* deny beats both */
	assert_int_equal(ask(p, agent_names, SL_VERB_WRITE, "erp.refunds.delete", "{\"amount\": 500}", &rule),
			 SL_DECIDE_DENY);
	assert_string_equal(rule, "no-deletes");
	/* a service is no agent: only the deny for everyone applies to it */
	assert_int_equal(ask(p, svc_names, SL_VERB_WRITE, "erp.refunds.create", "{\"amount\": 500}", &rule),
			 SL_DECIDE_ALLOW);
	assert_string_equal(rule, "default");
	/* verbs are separate: a read of the same action is not a write */
	assert_int_equal(ask(p, agent_names, SL_VERB_READ, "erp.refunds.delete", NULL, &rule), SL_DECIDE_ALLOW);
	done(p, &c);
}

static void test_fields_and_conditions(void **state)
{
	(void)state;
	struct collect c;
	struct sl_policy *p = load(RULES, &c);
	const char *rule;
	/* a field rule applies only when the field is touched */
	assert_int_equal(ask(p, agent_names, SL_VERB_READ, "crm.contacts.get", "{\"email\": \"a@b\"}", &rule),
			 SL_DECIDE_DENY);
	assert_string_equal(rule, "no-email");
	assert_int_equal(ask(p, agent_names, SL_VERB_READ, "crm.contacts.get", "{\"name\": \"A\"}", &rule),
			 SL_DECIDE_ALLOW);
	/* what an ai step must not see */
	struct sl_policy_subject subj = {agent_names};
	json_t *deny = sl_policy_denied_fields(p, &subj, NULL);
	assert_int_equal(json_array_size(deny), 1);
	json_t *v = json_loads("{\"input\": {\"email\": \"x@y\", \"to\": [{\"email\": \"z\", \"n\": 1}]}}", 0, NULL);
	assert_int_equal(sl_policy_strip_fields(v, deny), 2);
	char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(text, "{\"input\":{\"to\":[{\"n\":1}]}}");
	free(text);
	json_decref(v);
	json_decref(deny);
	struct sl_policy_subject svc = {svc_names};
	deny = sl_policy_denied_fields(p, &svc, NULL);
	assert_int_equal(json_array_size(deny), 0);
	json_decref(deny);
	/* a condition that fails to evaluate (a string compared with >) counts
	 * for a require_approval rule: fail closed */
	assert_int_equal(ask(p, agent_names, SL_VERB_WRITE, "erp.refunds.create", "{\"amount\": {\"a\": 1}}", &rule),
			 SL_DECIDE_REQUIRE_APPROVAL);
	done(p, &c);
}

static void test_defaults(void **state)
{
	(void)state;
	struct collect c;
	struct sl_policy *p = load("default: {write: deny}\nrules: []\n", &c);
	assert_int_equal(c.n, 0);
	const char *rule;
	assert_int_equal(ask(p, svc_names, SL_VERB_WRITE, "erp.x.y", NULL, &rule), SL_DECIDE_DENY);
	assert_string_equal(rule, "default");
	assert_int_equal(ask(p, svc_names, SL_VERB_READ, "erp.x.y", NULL, &rule), SL_DECIDE_ALLOW);
	done(p, &c);
	/* no policy at all allows */
	assert_int_equal(ask(NULL, svc_names, SL_VERB_WRITE, "erp.x.y", NULL, &rule), SL_DECIDE_ALLOW);
}

struct warns {
	int n;
	char last[256];
};

static void warn(void *ud, int line, int col, const char *msg)
{
	struct warns *w = ud;
	(void)col;
	assert_true(line > 0);
	w->n++;
	snprintf(w->last, sizeof w->last, "%s", msg);
}

static void test_unused(void **state)
{
	(void)state;
	struct collect c;
	struct sl_policy *p = load(RULES, &c);
	const char *actions[] = {"erp.refunds.create", "erp.refunds.delete", NULL};
	const char *workflows[] = {"refunds", NULL};
	const char *agents[] = {"refunds/decide", NULL};
	const char *fields[] = {"amount", "email", NULL};
	struct sl_policy_universe u = {actions, workflows, agents, fields};
	struct warns w = {0};
	sl_policy_check_unused(p, &u, warn, &w);
	assert_int_equal(w.n, 0);
	const char *other_actions[] = {"helpdesk.tickets.create", NULL};
	const char *other_fields[] = {"amount", NULL};
	u.actions = other_actions;
	u.fields = other_fields;
	sl_policy_check_unused(p, &u, warn, &w);
	assert_int_equal(w.n, 4); /* erp.refunds.* twice, erp.*.delete, the email field */
	assert_non_null(strstr(w.last, "field 'email'"));
	done(p, &c);
}

static void test_autonomy_and_signals(void **state)
{
	(void)state;
	assert_int_equal(sl_autonomy_parse("drafting"), SL_AUTONOMY_DRAFTING);
	assert_int_equal(sl_autonomy_parse("boss"), -1);
	assert_int_equal(sl_autonomy_demote(SL_AUTONOMY_SUPERVISED), SL_AUTONOMY_DRAFTING);
	assert_int_equal(sl_autonomy_demote(SL_AUTONOMY_ASSISTANT), SL_AUTONOMY_ASSISTANT);
	struct sl_step st = {.id = "decide", .kind = SL_STEP_AI};
	st.ai.autonomy = SL_AUTONOMY_SUPERVISED;
	st.ai.demote_on = 1u << SL_SIGNAL_DRIFT;
	sl_signal_reset();
	assert_int_equal(sl_step_autonomy(&st, "refunds", NULL), SL_AUTONOMY_SUPERVISED);
	assert_true(sl_signal_set(NULL, NULL, SL_SIGNAL_DRIFT, "refunds", "decide", true, NULL));
	assert_false(sl_signal_set(NULL, NULL, SL_SIGNAL_DRIFT, "refunds", "decide", true, NULL));
	unsigned active = 0;
	assert_int_equal(sl_step_autonomy(&st, "refunds", &active), SL_AUTONOMY_DRAFTING);
	assert_int_equal(active, 1u << SL_SIGNAL_DRIFT);
	/* a signal the step does not follow changes nothing */
	sl_signal_set(NULL, NULL, SL_SIGNAL_SLO_BURN, "refunds", NULL, true, NULL);
	json_t *j = sl_signal_step_json(&st, "refunds");
	assert_true(json_is_true(json_object_get(j, "demoted")));
	assert_string_equal(json_string_value(json_object_get(j, "acts_as")), "drafting");
	json_decref(j);
	assert_true(sl_signal_set(NULL, NULL, SL_SIGNAL_DRIFT, "refunds", "decide", false, NULL));
	assert_int_equal(sl_step_autonomy(&st, "refunds", NULL), SL_AUTONOMY_SUPERVISED);
	/* a workflow-wide signal reaches its steps */
	st.ai.demote_on |= 1u << SL_SIGNAL_SLO_BURN;
	assert_int_equal(sl_step_autonomy(&st, "refunds", NULL), SL_AUTONOMY_DRAFTING);
	sl_signal_reset();
}

/* The table travels between processes as a snapshot: the worker that
 * mirrors it demotes the same steps, without auditing the move again. */
static void test_signal_snapshot_mirror(void **state)
{
	(void)state;
	struct sl_step st = {.id = "decide", .kind = SL_STEP_AI};
	st.ai.autonomy = SL_AUTONOMY_SUPERVISED;
	st.ai.demote_on = (1u << SL_SIGNAL_DRIFT) | (1u << SL_SIGNAL_BUDGET);
	sl_signal_reset();
	sl_signal_set(NULL, NULL, SL_SIGNAL_DRIFT, "refunds", "decide", true, NULL);
	sl_signal_set(NULL, NULL, SL_SIGNAL_BUDGET, "billing", NULL, true, NULL);
	json_t *snap = sl_signal_snapshot();
	char *text = json_dumps(snap, JSON_COMPACT);
	assert_string_equal(text, "{\"signals\":[\"budget:billing\",\"drift:refunds/decide\"]}");
	free(text);
	sl_signal_reset();
	assert_int_equal(sl_step_autonomy(&st, "refunds", NULL), SL_AUTONOMY_SUPERVISED);
	sl_signal_mirror(NULL, snap);
	assert_int_equal(sl_step_autonomy(&st, "refunds", NULL), SL_AUTONOMY_DRAFTING);
	assert_int_equal(sl_step_autonomy(&st, "billing", NULL), SL_AUTONOMY_DRAFTING);
	/* a newer snapshot without them promotes back; junk entries are skipped */
	json_t *later = json_pack("{s:[s, s]}", "signals", "nonsense", "weather:refunds");
	sl_signal_mirror(NULL, later);
	assert_int_equal(sl_step_autonomy(&st, "refunds", NULL), SL_AUTONOMY_SUPERVISED);
	json_decref(later);
	json_decref(snap);
	sl_signal_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_fields_and_conditions),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_unused),
		cmocka_unit_test(test_autonomy_and_signals),
		cmocka_unit_test(test_signal_snapshot_mirror),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
