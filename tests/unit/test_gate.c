/*
 * test_gate.c: the engine's governance gate (src/engine/gate.c) and the
 * tool step's resumption (src/engine/tool.c), driven directly on a held
 * run: a write after a drafting ai step parks for an autonomy approval
 * with the ai answer as evidence; an approval found in
 * context._approvals lets it through (edited: with the approved input) or
 * fails it (class policy); a rule denies with its id, audited; a tool step
 * run again after its approval makes the approved calls without a model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/engine_int.h"
#include "gov/signal.h"

struct fx {
	char dir[64];
	struct sl_project *p;
	struct sl_engine e;
};

static void put(const char *dir, const char *name, const char *text)
{
	char *path = sl_path_join(dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	sl_mkdirs(path, 0755);
	*slash = '/';
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	snprintf(fx->dir, sizeof fx->dir, "/tmp/sluice-gate-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	put(fx->dir, "connectors/log.yaml", "connector: log\ntype: file\npath: out/log.jsonl\n");
	put(fx->dir, "models.yaml",
	    "providers:\n  p: { type: openai, base_url: \"http://127.0.0.1:9/v1\" }\nmodels:\n  m: { provider: p }\n"
	    "routes:\n  r: { models: [m] }\n");
	put(fx->dir, "workflows/w.yaml",
	    "workflow: w\nversion: 1\nsteps:\n"
	    "  - id: a\n    ai: { task: classify, route: r, input: .input.t, labels: [x, y], autonomy: drafting }\n"
	    "  - id: b\n    call: log.append\n    with: .input\n");
	put(fx->dir, "workflows/t.yaml",
	    "workflow: t\nversion: 1\nsteps:\n"
	    "  - id: act\n    ai: { task: tool, route: r, input: .input.t, allow_actions: [log.append] }\n");
	put(fx->dir, "workflows/s.yaml",
	    "workflow: s\nversion: 1\nallow_actions: [log.append]\nsteps:\n"
	    "  - id: a\n    ai: { task: classify, route: r, input: .input.t, labels: [x, y], autonomy: supervised,"
	    " demote_on: [drift] }\n"
	    "  - id: b\n    call: log.append\n    with: .input\n");
	put(fx->dir, "policies.yaml",
	    "rules:\n  - id: no-twos\n    who: agent\n    what: write\n    on: log.*\n    when: '.input.x == 2'\n"
	    "    decision: deny\n");
	struct sl_diags d = {0};
	struct sl_load_opts lo = {0};
	int rc = sl_project_load(fx->dir, &lo, &fx->p, &d);
	if (rc) {
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "%s:%d:%d: %s\n", d.v[i].file, d.v[i].line, d.v[i].col, d.v[i].msg);
	}
	assert_int_equal(rc, 0);
	sl_diags_free(&d);
	fx->e.project = fx->p;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	sl_project_free(fx->p);
	char *cmd = sl_asprintf("rm -rf '%s'", fx->dir);
	int rc = system(cmd);
	(void)rc;
	free(cmd);
	free(fx);
	return 0;
}

/* A held run of workflow name whose ai step a answered (for w). */
static void slot_init(struct fx *fx, struct slot *s, const char *name, const char *approvals_json)
{
	memset(s, 0, sizeof *s);
	s->wf = sl_project_workflow(fx->p, name);
	assert_non_null(s->wf);
	snprintf(s->run.id, sizeof s->run.id, "run_test");
	s->run.workflow = (char *)name;
	s->run.tenant = "default";
	s->run.correlation_id = "corr_test";
	s->run.context = json_pack("{s:{s:s}, s:{s:s, s:f, s:s}}", "input", "t", "hello", "a", "label", "x",
				   "confidence", 0.42, "rationale", "looks like x");
	s->run.step_status = json_pack("{s:s}", "a", "completed");
	if (approvals_json)
		json_object_set_new(s->run.context, "_approvals", json_loads(approvals_json, 0, NULL));
}

static void slot_done(struct slot *s)
{
	json_decref(s->run.context);
	json_decref(s->run.step_status);
}

static const struct sl_step *step_b(struct slot *s)
{
	return &s->wf->steps[1];
}

static void test_autonomy_parks(void **state)
{
	struct fx *fx = *state;
	struct slot s;
	slot_init(fx, &s, "w", NULL);
	struct outcome o = {0};
	json_t *input = json_pack("{s:i}", "x", 1);
	struct gate g;
	gate_call(&fx->e, &s, &o, step_b(&s), NULL, step_b(&s)->connector, step_b(&s)->action, &input, &g);
	assert_int_equal(g.verdict, GATE_PARK);
	assert_string_equal(g.kind, "autonomy");
	assert_string_equal(g.rule, "autonomy");
	assert_non_null(strstr(g.reason, "acting as drafting"));
	json_t *ai = json_array_get(json_object_get(g.evidence, "ai"), 0);
	assert_string_equal(json_string_value(json_object_get(ai, "step")), "a");
	assert_true(json_real_value(json_object_get(ai, "confidence")) > 0.41);
	assert_string_equal(json_string_value(json_object_get(ai, "rationale")), "looks like x");
	json_t *entry = json_array_get(o.audit, 0);
	assert_string_equal(json_string_value(json_object_get(entry, "action")), "policy.require_approval");
	assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "actor"), "id")), "w/a");
	gate_free(&g);
	outcome_free(&o);
	json_decref(input);
	slot_done(&s);
}

static void test_rule_denies(void **state)
{
	struct fx *fx = *state;
	struct slot s;
	slot_init(fx, &s, "w", NULL);
	struct outcome o = {0};
	json_t *input = json_pack("{s:i}", "x", 2);
	struct gate g;
	gate_call(&fx->e, &s, &o, step_b(&s), NULL, step_b(&s)->connector, step_b(&s)->action, &input, &g);
	assert_int_equal(g.verdict, GATE_DENY);
	assert_string_equal(g.rule, "no-twos");
	assert_int_equal(g.err.cls, SL_CLASS_POLICY);
	assert_non_null(strstr(g.err.msg, "denied by policy rule no-twos"));
	json_t *entry = json_array_get(o.audit, 0);
	assert_string_equal(json_string_value(json_object_get(entry, "action")), "policy.deny");
	assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "policy"), "rule")), "no-twos");
	gate_free(&g);
	outcome_free(&o);
	json_decref(input);
	slot_done(&s);
}

static void test_approval_found(void **state)
{
	struct fx *fx = *state;
	struct slot s;
	/* edited: the approved value replaces the input (the proposal's shape or the input alone) */
	slot_init(fx, &s, "w", "{\"b\": {\"id\": \"apr_1\", \"decision\": \"edited\", \"final\": {\"x\": 5}, \"by\": \"ann\"}}");
	struct outcome o = {0};
	json_t *input = json_pack("{s:i}", "x", 1);
	struct gate g;
	gate_call(&fx->e, &s, &o, step_b(&s), NULL, step_b(&s)->connector, step_b(&s)->action, &input, &g);
	assert_int_equal(g.verdict, GATE_GO);
	assert_string_equal(g.rule, "approval");
	assert_string_equal(g.approval_id, "apr_1");
	assert_int_equal(json_integer_value(json_object_get(input, "x")), 5);
	gate_free(&g);
	outcome_free(&o);
	slot_done(&s);
	slot_init(fx, &s, "w",
		  "{\"b\": {\"id\": \"apr_5\", \"decision\": \"edited\", \"final\": {\"connector\": \"log\", "
		  "\"action\": \"append\", \"effect\": \"write\", \"input\": {\"x\": 7}}}}");
	memset(&o, 0, sizeof o);
	gate_call(&fx->e, &s, &o, step_b(&s), NULL, step_b(&s)->connector, step_b(&s)->action, &input, &g);
	assert_int_equal(g.verdict, GATE_GO);
	assert_int_equal(json_integer_value(json_object_get(input, "x")), 7);
	gate_free(&g);
	outcome_free(&o);
	slot_done(&s);
	/* rejected: the step fails with class policy */
	slot_init(fx, &s, "w", "{\"b\": {\"id\": \"apr_2\", \"decision\": \"rejected\", \"by\": \"bob\"}}");
	memset(&o, 0, sizeof o);
	gate_call(&fx->e, &s, &o, step_b(&s), NULL, step_b(&s)->connector, step_b(&s)->action, &input, &g);
	assert_int_equal(g.verdict, GATE_DENY);
	assert_int_equal(g.err.cls, SL_CLASS_POLICY);
	assert_non_null(strstr(g.err.msg, "rejected by bob"));
	gate_free(&g);
	outcome_free(&o);
	json_decref(input);
	slot_done(&s);
}

static void test_tool_resumes(void **state)
{
	struct fx *fx = *state;
	struct slot s;
	slot_init(fx, &s, "t",
		  "{\"act\": {\"id\": \"apr_3\", \"decision\": \"approved\", \"by\": \"ann\", \"final\": "
		  "{\"calls\": [{\"action\": \"log.append\", \"input\": {\"note\": \"hi\"}}], \"answer\": {\"done\": true}}}}");
	struct outcome o = {0};
	json_t *out = NULL, *evidence = NULL;
	struct sl_err err;
	sl_err_clear(&err);
	int rc = step_exec_tool(&fx->e, &s, &o, &s.wf->steps[0], &out, &evidence, &err);
	assert_int_equal(rc, 0);
	assert_true(json_is_true(json_object_get(out, "done")));
	assert_int_equal(json_array_size(json_object_get(out, "_approved")), 1);
	char *path = sl_asprintf("%s/out/log.jsonl", fx->dir);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(sl_file_read(path, 1 << 20, &text, &len, &err), 0);
	assert_non_null(strstr(text, "\"note\":\"hi\""));
	free(text);
	free(path);
	json_t *entry = json_array_get(o.audit, 0);
	assert_string_equal(json_string_value(json_object_get(entry, "action")), "step.write");
	assert_string_equal(json_string_value(json_object_get(entry, "approval_id")), "apr_3");
	json_decref(out);
	outcome_free(&o);
	slot_done(&s);
	/* expired: fails, class policy, nothing made */
	slot_init(fx, &s, "t", "{\"act\": {\"id\": \"apr_4\", \"decision\": \"expired\"}}");
	memset(&o, 0, sizeof o);
	out = NULL;
	rc = step_exec_tool(&fx->e, &s, &o, &s.wf->steps[0], &out, &evidence, &err);
	assert_true(rc < 0);
	assert_int_equal(err.cls, SL_CLASS_POLICY);
	assert_null(out);
	outcome_free(&o);
	slot_done(&s);
}

/* A worker process follows the signals the server published to the store:
 * with the drift signal there, a supervised step acts as drafting and its
 * allowlisted write parks; without it (or without mirroring) it goes. */
static void test_worker_mirrors_signals(void **state)
{
	struct fx *fx = *state;
	struct sl_err err;
	sl_err_clear(&err);
	assert_int_equal(sl_store_open("sqlite::memory:", &fx->e.store, &err), 0);
	sl_signal_reset();
	struct slot s;
	slot_init(fx, &s, "s", NULL);
	const struct sl_step *b = &s.wf->steps[1];
	struct gate g;
	struct outcome o = {0};
	json_t *input = json_pack("{s:i}", "x", 1);
	/* the server saw drift and published it */
	json_t *snap = json_pack("{s:[s]}", "signals", "drift:s/a");
	assert_int_equal(sl_store_trigger_state_put(fx->e.store, SL_SIGNALS_STATE, snap, &err), 0);
	json_decref(snap);
	gate_call(&fx->e, &s, &o, b, NULL, b->connector, b->action, &input, &g);
	assert_int_equal(g.verdict, GATE_GO); /* not mirroring: the declared level */
	gate_free(&g);
	outcome_free(&o);
	fx->e.mirror_signals = true;
	memset(&o, 0, sizeof o);
	gate_call(&fx->e, &s, &o, b, NULL, b->connector, b->action, &input, &g);
	assert_int_equal(g.verdict, GATE_PARK);
	assert_non_null(strstr(g.reason, "demoted by a live signal"));
	gate_free(&g);
	outcome_free(&o);
	/* the drift cleared: after the refresh interval the write goes again */
	snap = json_pack("{s:[]}", "signals");
	assert_int_equal(sl_store_trigger_state_put(fx->e.store, SL_SIGNALS_STATE, snap, &err), 0);
	json_decref(snap);
	atomic_store(&fx->e.signals_at, 0);
	memset(&o, 0, sizeof o);
	gate_call(&fx->e, &s, &o, b, NULL, b->connector, b->action, &input, &g);
	assert_int_equal(g.verdict, GATE_GO);
	gate_free(&g);
	outcome_free(&o);
	json_decref(input);
	slot_done(&s);
	sl_signal_reset();
	sl_store_close(fx->e.store);
	fx->e.store = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_autonomy_parks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_denies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_mirrors_signals, setup, teardown),
	};
	return cmocka_run_group_tests_name("gate", tests, NULL, NULL);
}
