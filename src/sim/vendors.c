/*
 * vendors.c: the three vendor models. Each collection is described by a
 * table of fields (type, required, default), so create and PATCH share one
 * validator that names the failing field; only the few routes with side
 * effects of their own (ticket tags/comments/close, ERP payments) have
 * code of their own. All functions run with the simulator's mutex held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_int.h"

#define PER_PAGE_DEFAULT 25
#define CURSOR_SALT 0x5EEDu /* cursors are opaque: clients must not do arithmetic on them */

enum ftype { F_STR, F_EMAIL, F_ENUM, F_TAGS, F_AMOUNT, F_REF, F_CURRENCY, F_DATE };

struct field {
	const char *name;
	enum ftype type;
	bool required;
	const char *def;     /* default on create (a string), NULL = absent */
	const char *enums;   /* F_ENUM: "a|b|c" */
	int ref;             /* F_REF: index of the referenced collection */
};

struct coll_spec {
	const char *name, *prefix;
	const struct field *fields;
	bool patch; /* PATCH /coll/{id} allowed */
};

enum { PAGE_CURSOR, PAGE_NUMBER, PAGE_LINK };

struct vendor {
	const struct coll_spec *colls;
	size_t ncolls;
	int paging;
	const char *drift_from, *drift_to;
};

/* ---- the models ---------------------------------------------------------------- */

static const struct field ticket_fields[] = {
	{"subject", F_STR, true, NULL, NULL, 0},
	{"body", F_STR, false, "", NULL, 0},
	{"requester", F_EMAIL, false, NULL, NULL, 0},
	{"priority", F_ENUM, false, "normal", "low|normal|high|urgent", 0},
	{"status", F_ENUM, false, "open", "open|closed", 0},
	{"tags", F_TAGS, false, NULL, NULL, 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct coll_spec helpdesk_colls[] = {{"tickets", "tkt", ticket_fields, true}};

static const struct field account_fields[] = {
	{"name", F_STR, true, NULL, NULL, 0},
	{"domain", F_STR, false, NULL, NULL, 0},
	{"tier", F_ENUM, false, "free", "free|pro|enterprise", 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct field contact_fields[] = {
	{"account_id", F_REF, true, NULL, NULL, 0},
	{"email", F_EMAIL, true, NULL, NULL, 0},
	{"name", F_STR, false, NULL, NULL, 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct field note_fields[] = {
	{"account_id", F_REF, false, NULL, NULL, 0},
	{"contact_id", F_REF, false, NULL, NULL, 1},
	{"body", F_STR, true, NULL, NULL, 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct coll_spec crm_colls[] = {
	{"accounts", "acc", account_fields, true},
	{"contacts", "con", contact_fields, true},
	{"notes", "note", note_fields, true},
};

static const struct field supplier_fields[] = {
	{"name", F_STR, true, NULL, NULL, 0},
	{"vat_id", F_STR, false, NULL, NULL, 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct field invoice_fields[] = {
	{"supplier_id", F_REF, true, NULL, NULL, 0},
	{"number", F_STR, true, NULL, NULL, 0},
	{"amount", F_AMOUNT, true, NULL, NULL, 0},
	{"currency", F_CURRENCY, false, "EUR", NULL, 0},
	{"status", F_ENUM, false, "open", "open|paid", 0},
	{"due_date", F_DATE, false, NULL, NULL, 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct field payment_fields[] = {
	{"invoice_id", F_REF, true, NULL, NULL, 1},
	{"amount", F_AMOUNT, true, NULL, NULL, 0},
	{NULL, 0, false, NULL, NULL, 0},
};
static const struct coll_spec erp_colls[] = {
	{"suppliers", "sup", supplier_fields, true},
	{"invoices", "inv", invoice_fields, true},
	{"payments", "pay", payment_fields, false},
};

static const struct vendor vendors[] = {
	[SIM_HELPDESK] = {helpdesk_colls, SL_ARRAY_LEN(helpdesk_colls), PAGE_CURSOR, "subject", "title"},
	[SIM_CRM] = {crm_colls, SL_ARRAY_LEN(crm_colls), PAGE_NUMBER, "email", "email_address"},
	[SIM_ERP] = {erp_colls, SL_ARRAY_LEN(erp_colls), PAGE_LINK, "amount", "total"},
};

const char *sim_drift_from(const struct sl_sim *s)
{
	return vendors[s->kind].drift_from;
}

const char *sim_drift_to(const struct sl_sim *s)
{
	return vendors[s->kind].drift_to;
}

/* ---- records ---------------------------------------------------------------------- */

static json_t *now_json(void)
{
	char ts[32];
	sl_time_format(sl_now_ms(), ts);
	return json_string(ts);
}

/* A change: a new version and updated_at, what a sync dedupes on. */
static void bump(json_t *item)
{
	json_int_t v = json_integer_value(json_object_get(item, "version"));
	json_object_set_new(item, "version", json_integer(v + 1));
	json_object_set_new(item, "updated_at", now_json());
}

static bool is_deleted(const json_t *item)
{
	return json_is_true(json_object_get(item, "deleted"));
}

static json_t *find_item(const struct sim_coll *c, const char *id)
{
	size_t i;
	json_t *x;
	json_array_foreach(c->items, i, x) {
		const char *xid = json_string_value(json_object_get(x, "id"));
		if (xid && id && strcmp(xid, id) == 0)
			return x;
	}
	return NULL;
}

static bool enum_has(const char *enums, const char *v)
{
	size_t n = strlen(v);
	for (const char *p = enums; *p;) {
		size_t m = strcspn(p, "|");
		if (m == n && strncmp(p, v, n) == 0)
			return true;
		p += m + (p[m] == '|');
	}
	return false;
}

static bool is_tags(json_t *v)
{
	size_t i;
	json_t *x;
	if (!json_is_array(v) || json_array_size(v) > 100)
		return false;
	json_array_foreach(v, i, x) if (!json_is_string(x) || json_string_length(x) == 0 || json_string_length(x) > 64) return false;
	return true;
}

/* Checks one field's value; on error sets a 422 naming it. */
static bool field_ok(struct sl_sim *s, const struct field *f, json_t *v, struct sim_resp *rp)
{
	const char *str = json_string_value(v);
	switch (f->type) {
	case F_STR:
		if (str && json_string_length(v) <= 10000)
			return true;
		sim_problem(rp, 422, f->name, "%s must be a string", f->name);
		return false;
	case F_EMAIL:
		if (str && strchr(str, '@') && json_string_length(v) <= 320)
			return true;
		sim_problem(rp, 422, f->name, "%s must be an email address", f->name);
		return false;
	case F_ENUM:
		if (str && enum_has(f->enums, str))
			return true;
		sim_problem(rp, 422, f->name, "%s must be one of %s", f->name, f->enums);
		return false;
	case F_TAGS:
		if (is_tags(v))
			return true;
		sim_problem(rp, 422, f->name, "%s must be an array of short strings", f->name);
		return false;
	case F_AMOUNT:
		if (json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 1e12)
			return true;
		sim_problem(rp, 422, f->name, "%s must be a positive number", f->name);
		return false;
	case F_REF:
		if (str && (size_t)f->ref < s->ncolls && find_item(&s->colls[f->ref], str))
			return true;
		sim_problem(rp, 422, f->name, "%s must name an existing record", f->name);
		return false;
	case F_CURRENCY:
		if (str && strlen(str) == 3 && str[0] >= 'A' && str[0] <= 'Z' && str[1] >= 'A' && str[1] <= 'Z' &&
		    str[2] >= 'A' && str[2] <= 'Z')
			return true;
		sim_problem(rp, 422, f->name, "%s must be a 3-letter ISO 4217 code", f->name);
		return false;
	case F_DATE: {
		int64_t ms;
		char ts[40];
		if (str && strlen(str) == 10) {
			snprintf(ts, sizeof ts, "%sT00:00:00Z", str);
			if (sl_time_parse(ts, &ms) == 0)
				return true;
		}
		sim_problem(rp, 422, f->name, "%s must be a date YYYY-MM-DD", f->name);
		return false;
	}
	}
	return false;
}

/* Validates body against the field table and copies the known fields into
 * rec; unknown fields are ignored, as lenient real APIs do. */
static bool apply_fields(struct sl_sim *s, const struct coll_spec *cs, json_t *body, json_t *rec, bool create,
			 struct sim_resp *rp)
{
	if (!json_is_object(body)) {
		sim_problem(rp, 422, NULL, "the body must be a JSON object");
		return false;
	}
	for (const struct field *f = cs->fields; f->name; f++) {
		json_t *v = json_object_get(body, f->name);
		if (!v && create && f->required) {
			sim_problem(rp, 422, f->name, "%s is required", f->name);
			return false;
		}
		if (v && !field_ok(s, f, v, rp))
			return false;
	}
	for (const struct field *f = cs->fields; f->name; f++) {
		json_t *v = json_object_get(body, f->name);
		if (v)
			json_object_set(rec, f->name, v);
		else if (create && f->def)
			json_object_set_new(rec, f->name, json_string(f->def));
		else if (create && f->type == F_TAGS)
			json_object_set_new(rec, f->name, json_array());
	}
	return true;
}

static json_t *new_record(struct sim_coll *c)
{
	char id[SL_ID_MAX];
	snprintf(id, sizeof id, "%s_%u", c->prefix, ++c->next_id);
	json_t *now = now_json();
	json_t *rec = json_pack("{s:s, s:O, s:O, s:i}", "id", id, "created_at", now, "updated_at", now, "version", 1);
	json_decref(now);
	return rec;
}

/* Creates a record from body; NULL with rp set on a validation error. */
static json_t *create_record(struct sl_sim *s, size_t ci, json_t *body, struct sim_resp *rp)
{
	struct sim_coll *c = &s->colls[ci];
	const struct coll_spec *cs = &vendors[s->kind].colls[ci];
	if (json_array_size(c->items) >= SIM_ITEMS_MAX) {
		sim_problem(rp, 507, NULL, "%s is full", c->name);
		return NULL;
	}
	json_t *rec = new_record(c);
	if (!rec || !apply_fields(s, cs, body, rec, true, rp)) {
		c->next_id--; /* a refused create takes no id, so ids stay dense */
		json_decref(rec);
		return NULL;
	}
	if (s->kind == SIM_HELPDESK)
		json_object_set_new(rec, "comments", json_array());
	json_array_append(c->items, rec);
	return rec;
}

/* ---- seed data: the same ids on every start ------------------------------------------ */

static void seed(struct sl_sim *s, size_t ci, const char *json)
{
	struct sim_resp rp = {0};
	json_t *body = json_loads(json, 0, NULL);
	json_decref(create_record(s, ci, body, &rp));
	json_decref(rp.body);
	json_decref(body);
}

static void seed_all(struct sl_sim *s)
{
	switch (s->kind) {
	case SIM_HELPDESK:
		seed(s, 0, "{\"subject\":\"Cannot log in\",\"body\":\"Password reset mail never arrives\","
			   "\"requester\":\"ana@example.com\",\"priority\":\"high\",\"tags\":[\"login\"]}");
		seed(s, 0, "{\"subject\":\"Invoice copy\",\"body\":\"Please send the March invoice\","
			   "\"requester\":\"bo@example.com\"}");
		seed(s, 0, "{\"subject\":\"Feature request: dark mode\",\"requester\":\"cy@example.com\","
			   "\"priority\":\"low\"}");
		break;
	case SIM_CRM:
		seed(s, 0, "{\"name\":\"Acme\",\"domain\":\"acme.example\",\"tier\":\"enterprise\"}");
		seed(s, 0, "{\"name\":\"Globex\",\"domain\":\"globex.example\",\"tier\":\"pro\"}");
		seed(s, 1, "{\"account_id\":\"acc_1\",\"email\":\"wile@acme.example\",\"name\":\"Wile E.\"}");
		seed(s, 2, "{\"account_id\":\"acc_1\",\"body\":\"Renewal due in May\"}");
		break;
	case SIM_ERP:
		seed(s, 0, "{\"name\":\"Initech\",\"vat_id\":\"DE123456789\"}");
		seed(s, 0, "{\"name\":\"Umbrella\",\"vat_id\":\"FR987654321\"}");
		seed(s, 1, "{\"supplier_id\":\"sup_1\",\"number\":\"INV-1001\",\"amount\":1200.5,\"due_date\":\"2026-12-01\"}");
		seed(s, 1, "{\"supplier_id\":\"sup_1\",\"number\":\"INV-1002\",\"amount\":80,\"due_date\":\"2026-12-15\"}");
		seed(s, 1, "{\"supplier_id\":\"sup_2\",\"number\":\"U-77\",\"amount\":310,\"currency\":\"USD\"}");
		break;
	case SIM_MODEL: break; /* not a vendor: model.c */
	}
}

int sim_vendor_init(struct sl_sim *s)
{
	SL_ASSERT((size_t)s->kind < SL_ARRAY_LEN(vendors));
	const struct vendor *v = &vendors[s->kind];
	s->ncolls = v->ncolls;
	s->next_comment = 0;
	for (size_t i = 0; i < v->ncolls; i++) {
		s->colls[i] = (struct sim_coll){v->colls[i].name, v->colls[i].prefix, json_array(), 0};
		if (!s->colls[i].items)
			return -1;
	}
	seed_all(s);
	return 0;
}

void sim_vendor_free(struct sl_sim *s)
{
	for (size_t i = 0; i < s->ncolls; i++) {
		json_decref(s->colls[i].items);
		s->colls[i].items = NULL;
	}
	s->ncolls = 0;
}

/* ---- lists ------------------------------------------------------------------------------ */

/* Reads a positive integer query parameter; false (400 set) when malformed. */
static bool query_int(const struct sim_req *rq, const char *name, int64_t def, int64_t max, int64_t *out,
		      struct sim_resp *rp)
{
	const char *q = sim_query(rq, name);
	*out = def;
	if (!q)
		return true;
	if (sl_parse_i64(q, out) != 0 || *out < 1 || *out > max) {
		sim_problem(rp, 400, name, "%s must be an integer from 1 to %lld", name, (long long)max);
		return false;
	}
	return true;
}

/* The records a list shows, after the filters (?updated_since=, and
 * ?account_id= on CRM contacts/notes). Returns a new array. */
static json_t *filtered(const struct sim_req *rq, const struct sim_coll *c, struct sim_resp *rp)
{
	const char *since_s = sim_query(rq, "updated_since");
	const char *account = sim_query(rq, "account_id");
	const char *del = sim_query(rq, "include_deleted");
	bool with_deleted = del && strcmp(del, "true") == 0;
	int64_t since = 0, t;
	if (since_s && sl_time_parse(since_s, &since) != 0) {
		sim_problem(rp, 400, "updated_since", "updated_since must be an RFC 3339 date-time");
		return NULL;
	}
	json_t *out = json_array();
	size_t i;
	json_t *x;
	json_array_foreach(c->items, i, x) {
		const char *u = json_string_value(json_object_get(x, "updated_at"));
		if (since_s && (!u || sl_time_parse(u, &t) != 0 || t < since))
			continue;
		const char *acc = json_string_value(json_object_get(x, "account_id"));
		if (account && (!acc || strcmp(acc, account) != 0))
			continue;
		if (is_deleted(x) && !with_deleted)
			continue;
		json_array_append(out, x);
	}
	return out;
}

static json_t *slice(json_t *all, size_t from, size_t n)
{
	json_t *page = json_array();
	for (size_t i = from; i < from + n && i < json_array_size(all); i++)
		json_array_append(page, json_array_get(all, i));
	return page;
}

static void list_cursor(const struct sim_req *rq, json_t *all, struct sim_resp *rp)
{
	int64_t limit;
	uint64_t off = 0;
	if (!query_int(rq, "limit", PER_PAGE_DEFAULT, SIM_PER_PAGE_MAX, &limit, rp))
		return;
	const char *cur = sim_query(rq, "cursor");
	if (cur && *cur) {
		char *end = NULL;
		if (!sl_str_startswith(cur, "c1.") || (off = strtoull(cur + 3, &end, 16), !end || *end || end == cur + 3)) {
			sim_problem(rp, 400, "cursor", "cursor is not one this API gave out");
			return;
		}
		off ^= CURSOR_SALT;
		if (off > json_array_size(all))
			off = json_array_size(all);
	}
	size_t total = json_array_size(all);
	json_t *next = json_null();
	if (off + (uint64_t)limit < total) {
		char c[40];
		snprintf(c, sizeof c, "c1.%llx", (unsigned long long)((off + (uint64_t)limit) ^ CURSOR_SALT));
		json_decref(next);
		next = json_string(c);
	}
	rp->status = 200;
	rp->body = json_pack("{s:o, s:o}", "data", slice(all, (size_t)off, (size_t)limit), "next_cursor", next);
}

static void list_pages(const struct sim_req *rq, json_t *all, bool link, const struct sl_sim *s,
		       const char *coll, struct sim_resp *rp)
{
	int64_t page, per;
	if (!query_int(rq, "page", 1, 1000000, &page, rp) ||
	    !query_int(rq, "per_page", PER_PAGE_DEFAULT, SIM_PER_PAGE_MAX, &per, rp))
		return;
	size_t total = json_array_size(all);
	size_t from = (size_t)((page - 1) * per);
	json_t *data = slice(all, from, (size_t)per);
	rp->status = 200;
	if (!link) {
		rp->body = json_pack("{s:o, s:I, s:I, s:I}", "data", data, "page", (json_int_t)page, "per_page",
				     (json_int_t)per, "total", (json_int_t)total);
		return;
	}
	rp->body = data;
	if (from + (size_t)per < total)
		snprintf(rp->link, sizeof rp->link, "<http://%s:%d/%s?page=%lld&per_page=%lld>; rel=\"next\"", s->host,
			 s->port, coll, (long long)page + 1, (long long)per);
}

/* ---- routes ------------------------------------------------------------------------------- */

static void route_name(struct sim_resp *rp, const char *method, const char *coll, const char *tail)
{
	snprintf(rp->route, sizeof rp->route, "%s /%s%s", method, coll, tail);
}

static void method_not_allowed(struct sim_resp *rp, const char *allow)
{
	snprintf(rp->allow, sizeof rp->allow, "%s", allow);
	sim_problem(rp, 405, NULL, "method not allowed; use %s", allow);
}

/* POST /payments: pays an invoice; paid in full marks it paid. */
static void create_payment(struct sl_sim *s, json_t *body, struct sim_resp *rp)
{
	const struct field *amount_f = &payment_fields[1];
	json_t *inv = json_is_object(body) ? find_item(&s->colls[1], json_string_value(json_object_get(body, "invoice_id"))) : NULL;
	json_t *amount = json_object_get(body, "amount");
	if (inv && amount && field_ok(s, amount_f, amount, rp)) {
		double due = json_number_value(json_object_get(inv, "amount"));
		double paid = json_number_value(json_object_get(inv, "paid_amount"));
		if (strcmp(json_string_value(json_object_get(inv, "status")), "paid") == 0 ||
		    paid + json_number_value(amount) > due + 1e-9) {
			sim_problem(rp, 422, "amount", "amount %.2f is more than the %.2f still open on the invoice",
				    json_number_value(amount), due - paid);
			return;
		}
	} else if (rp->body) {
		return;
	}
	json_t *rec = create_record(s, 2, body, rp);
	if (!rec)
		return;
	double paid = json_number_value(json_object_get(inv, "paid_amount")) + json_number_value(amount);
	json_object_set_new(inv, "paid_amount", json_real(paid));
	if (paid + 1e-9 >= json_number_value(json_object_get(inv, "amount")))
		json_object_set_new(inv, "status", json_string("paid"));
	json_object_set_new(inv, "updated_at", now_json());
	rp->status = 201;
	rp->body = rec;
	rp->effect = true;
}

static void create(struct sl_sim *s, size_t ci, json_t *body, struct sim_resp *rp)
{
	if (s->kind == SIM_CRM && ci == 2 && json_is_object(body) && !json_object_get(body, "account_id") &&
	    !json_object_get(body, "contact_id")) {
		sim_problem(rp, 422, "account_id", "a note needs account_id or contact_id");
		return;
	}
	if (s->kind == SIM_ERP && ci == 2) {
		create_payment(s, body, rp);
		return;
	}
	json_t *rec = create_record(s, ci, body, rp);
	if (!rec)
		return;
	rp->status = 201;
	rp->body = rec;
	rp->effect = true;
}

static void patch(struct sl_sim *s, size_t ci, json_t *item, json_t *body, struct sim_resp *rp)
{
	json_t *copy = json_deep_copy(item);
	if (!apply_fields(s, &vendors[s->kind].colls[ci], body, copy, false, rp)) {
		json_decref(copy);
		return;
	}
	json_object_update(item, copy); /* all or nothing: item changes only when every field passed */
	json_decref(copy);
	bump(item);
	rp->status = 200;
	rp->body = json_incref(item);
	rp->effect = true;
}

/* POST /tickets/{id}/tags|comments|close */
static void ticket_action(struct sl_sim *s, json_t *t, const char *action, json_t *body, struct sim_resp *rp)
{
	if (strcmp(action, "tags") == 0) {
		json_t *tags = json_object_get(body, "tags");
		if (!is_tags(tags)) {
			sim_problem(rp, 422, "tags", "tags must be an array of short strings");
			return;
		}
		json_t *have = json_object_get(t, "tags");
		size_t i, j;
		json_t *x, *y;
		json_array_foreach(tags, i, x) {
			bool dup = false;
			json_array_foreach(have, j, y) dup = dup || json_equal(x, y);
			if (!dup && json_array_size(have) < 100)
				json_array_append(have, x);
		}
		rp->status = 200;
	} else if (strcmp(action, "comments") == 0) {
		json_t *b = json_object_get(body, "body");
		if (!json_is_string(b) || json_string_length(b) == 0) {
			sim_problem(rp, 422, "body", "body is required and must be a string");
			return;
		}
		char id[SL_ID_MAX];
		snprintf(id, sizeof id, "cmt_%u", ++s->next_comment);
		json_t *c = json_pack("{s:s, s:O, s:o}", "id", id, "body", b, "created_at", now_json());
		json_array_append_new(json_object_get(t, "comments"), c);
		json_object_set_new(t, "updated_at", now_json());
		rp->status = 201;
		rp->body = json_incref(c);
		rp->effect = true;
		return;
	} else {
		json_object_set_new(t, "status", json_string("closed"));
		rp->status = 200;
	}
	json_object_set_new(t, "updated_at", now_json());
	rp->body = json_incref(t);
	rp->effect = true;
}

static void handle_item(struct sl_sim *s, size_t ci, const struct sim_req *rq, struct sim_resp *rp)
{
	const char *coll = s->colls[ci].name, *m = rq->method;
	bool patchable = vendors[s->kind].colls[ci].patch;
	json_t *item = find_item(&s->colls[ci], rq->seg[1]);
	if (rq->nseg == 3) {
		const char *a = rq->seg[2];
		if (s->kind != SIM_HELPDESK || (strcmp(a, "tags") && strcmp(a, "comments") && strcmp(a, "close"))) {
			sim_problem(rp, 404, NULL, "no route /%s/{id}/%s", coll, a);
			return;
		}
		if (strcmp(m, "POST") != 0) {
			method_not_allowed(rp, "POST");
			return;
		}
		char tail[32];
		snprintf(tail, sizeof tail, "/{id}/%s", a);
		route_name(rp, m, coll, tail);
		if (!item)
			sim_problem(rp, 404, NULL, "no ticket %s", rq->seg[1]);
		else
			ticket_action(s, item, a, rq->body, rp);
		return;
	}
	/* CRM records can be deleted (a sync must see the tombstones) */
	bool deletable = patchable && s->kind == SIM_CRM;
	bool del = deletable && strcmp(m, "DELETE") == 0;
	if (strcmp(m, "GET") != 0 && !(patchable && strcmp(m, "PATCH") == 0) && !del) {
		method_not_allowed(rp, deletable ? "GET, PATCH, DELETE" : patchable ? "GET, PATCH" : "GET");
		return;
	}
	route_name(rp, m, coll, "/{id}");
	if (item && is_deleted(item))
		item = NULL; /* gone, but kept as a tombstone that lists show with include_deleted=true */
	if (!item)
		sim_problem(rp, 404, NULL, "no record %s in %s", rq->seg[1], coll);
	else if (del) {
		json_object_set_new(item, "deleted", json_true());
		bump(item);
		rp->status = 200;
		rp->body = json_incref(item);
		rp->effect = true;
	} else if (strcmp(m, "GET") == 0) {
		rp->status = 200;
		rp->body = json_incref(item);
	} else
		patch(s, ci, item, rq->body, rp);
}

static void handle_list(struct sl_sim *s, size_t ci, const struct sim_req *rq, struct sim_resp *rp)
{
	const char *coll = s->colls[ci].name;
	if (strcmp(rq->method, "POST") == 0) {
		route_name(rp, "POST", coll, "");
		create(s, ci, rq->body, rp);
		return;
	}
	if (strcmp(rq->method, "GET") != 0) {
		method_not_allowed(rp, "GET, POST");
		return;
	}
	route_name(rp, "GET", coll, "");
	json_t *all = filtered(rq, &s->colls[ci], rp);
	if (!all)
		return;
	int paging = vendors[s->kind].paging;
	if (paging == PAGE_CURSOR)
		list_cursor(rq, all, rp);
	else
		list_pages(rq, all, paging == PAGE_LINK, s, coll, rp);
	json_decref(all);
}

void sim_vendor_handle(struct sl_sim *s, const struct sim_req *rq, struct sim_resp *rp)
{
	for (size_t ci = 0; ci < s->ncolls; ci++) {
		if (strcmp(rq->seg[0], s->colls[ci].name) != 0)
			continue;
		if (rq->nseg == 1)
			handle_list(s, ci, rq, rp);
		else
			handle_item(s, ci, rq, rp);
		return;
	}
	sim_problem(rp, 404, NULL, "no route /%s on the %s simulator", rq->seg[0], s->kind_name);
}
