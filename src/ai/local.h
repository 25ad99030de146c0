/*
 * local.h: private to src/ai/ (and the `sluice model` verb, its tests and
 * benchmarks): the built-in specialist models of the `local` provider.
 * Nothing here touches the network; everything is deterministic.
 *
 *   - A linear text classifier (local_classifier.c) on liblinear: hashed
 *     word 1-2-grams and character 3-5-grams, sublinear tf, L2 norm,
 *     L2-regularised logistic regression, softmax over the one-vs-rest
 *     scores with a temperature fitted by cross-validation, so the stated
 *     confidence matches the accuracy. A model is two files in a folder:
 *     NAME.json (labels, feature settings, temperature, metrics, the
 *     training set's sha256) and NAME.liblinear (liblinear's save_model).
 *   - Pattern extractors (local_extract.c) on PCRE2: e-mail addresses,
 *     phone numbers, amounts with currency, dates, IBANs (mod-97 checked),
 *     invoice numbers; a JSON Schema filler over them; PII spans for
 *     masking.
 *
 * Conventions are util.h's: 0 or a negative SL_E* code; detail in struct
 * sl_err; ownership said per call. docs/reference/models.md says what the
 * models match and how they are trained.
 */
#ifndef SL_AI_LOCAL_H
#define SL_AI_LOCAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* ==== the text classifier ================================================= */

#define LOCAL_LABELS_MAX 256        /* distinct labels in one model */
#define LOCAL_LABEL_MAX 128         /* bytes of one label */
#define LOCAL_NAME_MAX 64           /* a model name: [A-Za-z0-9_.-], no leading dot */
#define LOCAL_HASH_BITS_DEFAULT 18  /* 2^18 feature buckets */
#define LOCAL_FOLDS_DEFAULT 5       /* cross-validation folds for calibration */
#define LOCAL_C_DEFAULT 10.0        /* liblinear's C (inverse regularisation) */

struct local_clf; /* a loaded model: immutable, shareable across threads */

struct local_train_opts {
	double C;      /* 0: LOCAL_C_DEFAULT */
	int hash_bits; /* 0: LOCAL_HASH_BITS_DEFAULT; 10..24 */
	int folds;     /* 0: LOCAL_FOLDS_DEFAULT; 2..20, capped by the smallest label's count */
};

/* What training measured. Owned members: free with local_train_report_free. */
struct local_train_report {
	size_t nlabels, examples;
	char **labels;         /* sorted; nlabels */
	size_t *counts;        /* examples per label */
	double C;
	int hash_bits, folds;
	double train_accuracy; /* the final model on its own training set */
	double cv_accuracy;    /* out-of-fold (held-out) accuracy */
	double cv_macro_f1;    /* out-of-fold macro-F1 */
	double temperature;    /* fitted on the out-of-fold scores */
	double ece_raw;        /* out-of-fold expected calibration error at T=1 */
	double ece;            /* ... at the fitted temperature */
	char sha256[65];       /* of the training file's bytes */
	char json_path[1024], model_path[1024];
};
void local_train_report_free(struct local_train_report *rep);

/* Reads jsonl_path (one {"text": "...", "label": "..."} object per line;
 * blank lines are skipped; extra keys are ignored), trains, and writes
 * out_dir/NAME.json and out_dir/NAME.liblinear (atomically; out_dir is
 * created). o may be NULL (defaults); rep may be NULL.
 * Errors: SL_EINVAL with err->file/line set for a bad line ("FILE:LINE:
 * message"), fewer than 2 labels, or a label with fewer than 2 examples;
 * SL_EIO for files. Borrows everything. Meant for the command line, not
 * a server: liblinear's print hook is process-wide and its save_model
 * switches the locale (setlocale) while it writes. */
int local_clf_train(const char *jsonl_path, const char *out_dir, const char *name, const struct local_train_opts *o,
		    struct local_train_report *rep, struct sl_err *err);

/* Loads dir/NAME.json + dir/NAME.liblinear (read here, not by liblinear's
 * load_model, which switches the locale: so loading is safe while other
 * threads run). Returns 0 and *out (owned: local_clf_free), SL_ENOTFOUND
 * when NAME.json does not exist, SL_EINVAL when the files do not agree
 * (the weights' SHA-256 is in the .json) or are not a model. */
int local_clf_load(const char *dir, const char *name, struct local_clf **out, struct sl_err *err);
void local_clf_free(struct local_clf *m);

/* Classifies text (any bytes; NUL-terminated). Sets *label (borrowed from
 * m, lives as long as m), *confidence (the calibrated probability of that
 * label, in (0,1]) and, when probs is not NULL, probs[i] for every label i
 * in local_clf_labels order (they sum to 1). Thread-safe: m is only read.
 * Returns 0, or SL_ENOMEM. */
int local_clf_predict(const struct local_clf *m, const char *text, const char **label, double *confidence,
		      double *probs);

/* The labels (borrowed from m), sorted; *n gets their number. */
const char *const *local_clf_labels(const struct local_clf *m, size_t *n);
/* The model's NAME.json document (borrowed from m). */
const json_t *local_clf_info(const struct local_clf *m);

/* Measures m on a labelled JSONL file (the training format). Owned
 * members: local_eval_free. Lines whose label the model does not know
 * count as errors (in n and unknown, not in the confusion matrix). */
struct local_eval {
	size_t nlabels;            /* the model's labels */
	const char *const *labels; /* borrowed from the model */
	size_t n, correct, unknown;
	double accuracy, macro_f1, ece; /* ece: 10 equal-width confidence bins */
	double mean_confidence;
	double *precision, *recall, *f1; /* per label */
	size_t *support;                 /* true examples per label */
	size_t *confusion;               /* nlabels x nlabels, [true * nlabels + predicted] */
};
int local_clf_eval(const struct local_clf *m, const char *jsonl_path, struct local_eval *out, struct sl_err *err);
void local_eval_free(struct local_eval *e);

/* Whether name is a valid model name (LOCAL_NAME_MAX, [A-Za-z0-9_.-], no
 * leading dot), so it can never leave its folder. */
bool local_clf_name_ok(const char *name);

/* ==== the pattern extractors ============================================== */

enum local_kind {
	LOCAL_EMAIL,
	LOCAL_PHONE,
	LOCAL_AMOUNT,
	LOCAL_DATE,
	LOCAL_IBAN,
	LOCAL_INVOICE,
};
const char *local_kind_name(enum local_kind k); /* "email", "phone", ... */

#define LOCAL_EXTRACT_TEXT_MAX (1024 * 1024) /* longer text is scanned up to here */

/* Runs every extractor over text. *out (owned, json_decref) is
 *   {"emails": [str], "phones": [str as written], "amounts": [{amount,
 *    currency, text}], "dates": ["YYYY-MM-DD"], "ibans": [str, no spaces,
 *    upper case], "invoice_numbers": [str]}
 * each array in order of appearance, without duplicates. Thread-safe.
 * Returns 0, SL_EINVAL (text NULL) or SL_ENOMEM. */
int local_extract_all(const char *text, json_t **out);

/* Fills the top-level properties of a JSON Schema object from text by
 * name and format hints (docs/reference/models.md has the table): e.g.
 * "email"/"*_email"/format email, "phone", "amount"/"total"/"price",
 * "currency", "date"/"*_date"/format date, "iban", "invoice_number". A
 * property of type array gets every match. Unrecognised or unfound
 * properties are left out. *out is an owned object; *confidence is the
 * fraction of required properties filled (1 when all; with none required,
 * 1 when something was filled, else 0). Thread-safe. Returns 0, SL_EINVAL
 * (schema not an object) or SL_ENOMEM. */
int local_extract_fill(const char *text, const json_t *schema, json_t **out, double *confidence);

/* Where personal data is in text, for masking: e-mail addresses, phone
 * numbers and IBANs as byte offsets, sorted, not overlapping. *spans is
 * owned (free()); NULL when *n is 0. Thread-safe. Returns 0 or SL_ENOMEM. */
struct local_span {
	size_t off, len;
	enum local_kind kind;
};
int local_pii_spans(const char *text, struct local_span **spans, size_t *n);

#endif
