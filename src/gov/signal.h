/*
 * gov/signal.h: the live signals autonomy follows (DESIGN.md §7,
 * `demote_on:` of ai steps).
 *
 * The evaluators that already compute the signals (the server's drift and
 * SLO evaluations, the AI budgets) report each change here; the engine asks,
 * before every gated call, whether a signal holds for a step. So the state
 * lives in one small table in the process, guarded by a mutex: reading it
 * costs a lock and a short scan, not a store query. The server, which
 * evaluates them, also writes the table to the store (SL_SIGNALS_STATE);
 * a `sluice worker` process mirrors it from there, so its steps are
 * demoted with the server's.
 *
 * Keys: drift is per ai step (WORKFLOW/STEP); slo_burn is per workflow;
 * budget is per workflow (a route's budget is reported for every workflow
 * that uses the route).
 */
#ifndef SL_GOV_SIGNAL_H
#define SL_GOV_SIGNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "config/config.h"
#include "store/store.h"

/* Records that sig holds (or not) for workflow (and step, NULL for the
 * whole workflow). For every ai step whose `demote_on` names sig and whose
 * demotion changes with it, an audit entry autonomy.demote or
 * autonomy.promote is appended to store (when not NULL) with detail (may
 * be NULL; borrowed) and the levels. Returns whether the state changed. */
bool sl_signal_set(struct sl_store *store, const struct sl_project *p, enum sl_signal sig, const char *workflow,
		   const char *step, bool holds, const json_t *detail);
/* Whether sig holds for the step (a workflow-wide one counts). */
bool sl_signal_holds(enum sl_signal sig, const char *workflow, const char *step);
/* The signals of demote_on that hold for the step now, as a bit set. */
unsigned sl_signal_active(const struct sl_step *st, const char *workflow);
/* The level the step acts at now: its autonomy, one lower while a signal
 * of its demote_on holds. */
enum sl_autonomy sl_step_autonomy(const struct sl_step *st, const char *workflow, unsigned *active);
/* {"demoted": bool, "autonomy", "acts_as", "signals": [...]} for an ai
 * step (for /v1/drift and /v1/slo). Owned. */
json_t *sl_signal_step_json(const struct sl_step *st, const char *workflow);
/* The table as a document ({"signals": ["drift:WF/STEP", "slo_burn:WF",
 * ...]} sorted), to share with other processes; owned. */
#define SL_SIGNALS_STATE "autonomy.signals"
json_t *sl_signal_snapshot(void);
/* Replaces the table with a snapshot's (another process evaluated it): no
 * audit entries, those were written where the change was seen. Updates
 * the demotion gauge for p's steps. */
void sl_signal_mirror(const struct sl_project *p, const json_t *snapshot);
/* Forgets every signal (tests). */
void sl_signal_reset(void);

#endif
