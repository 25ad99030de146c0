/*
 * local_classifier.c: the `local` provider's text classifier: hashed
 * n-gram features and L2-regularised logistic regression (liblinear),
 * with a softmax temperature fitted on out-of-fold scores.
 *
 * Features (feature_text): the text is cut into words (runs of ASCII
 * letters and digits and of non-ASCII bytes), lower-cased, every digit
 * read as 0 (order numbers should not be vocabulary). Each word, each
 * pair of neighbouring words, and each character 3-, 4- and 5-gram of
 * "<word>" is hashed (64-bit FNV-1a with a seed per kind, then the murmur3
 * finaliser). Counts per distinct feature become 1 + ln(tf); the hash
 * picks a bucket (low bits) and a sign (top bit), so collisions cancel
 * out on average instead of adding up; the vector is L2-normalised and a
 * bias feature of 1 appended.
 *
 * Training: liblinear L2R_LR (one-vs-rest, deterministic). Probabilities
 * are softmax(scores / T) over the one-vs-rest scores; T is fitted by
 * minimising the negative log-likelihood of the out-of-fold scores of a
 * stratified k-fold cross-validation (convex in 1/T: golden-section
 * search), so a stated 0.8 is right about 80% of the time. The final model
 * is trained on everything.
 *
 * liblinear prints progress to stdout; its print hook (global) is set to
 * drop it, once.
 */
#include <errno.h>
#include <linear.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ai/local.h"

#define CLF_FORMAT "sluice-local-classifier"
#define CLF_VERSION 1
#define FEATURE_TEXT_MAX (64 * 1024) /* bytes of a text read for features */
#define WORD_MAX 64                   /* longer words are cut for features */
#define EXAMPLES_MAX 1000000
#define ECE_BINS 10

/* The seeds name the feature kinds, so a word and a 3-gram never share a hash. */
enum { SEED_WORD = 1, SEED_BIGRAM = 2, SEED_CHAR = 3 };

struct local_clf {
	struct model *lm;
	json_t *info;          /* NAME.json */
	char **labels;         /* nlabels, sorted; NULL-terminated */
	size_t nlabels;
	int *class_label;      /* liblinear class i -> label index */
	int nr_class;
	int hash_bits;
	double temperature;
};

/* ---- liblinear's output ------------------------------------------------------ */

static void print_nothing(const char *s)
{
	(void)s;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_init(void)
{
	set_print_string_function(print_nothing);
}

/* ---- hashing and features ------------------------------------------------------ */

static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

static uint64_t hash_bytes(uint64_t seed, const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return fmix64(h ^ n);
}

struct hvec {
	uint64_t *v;
	size_t n, cap;
};

static void hvec_push(struct hvec *h, uint64_t x)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->v = sl_xrealloc(h->v, h->cap * sizeof *h->v);
	}
	h->v[h->n++] = x;
}

/* Stable LSD radix sorts (qsort's indirect compares were most of a
 * prediction's time). tmp holds n elements. */
static void sort_u64(uint64_t *v, uint64_t *tmp, size_t n)
{
	if (n < 2)
		return;
	for (int shift = 0; shift < 64; shift += 8) {
		size_t cnt[257] = {0};
		for (size_t i = 0; i < n; i++)
			cnt[((v[i] >> shift) & 0xff) + 1]++;
		for (int b = 0; b < 256; b++)
			cnt[b + 1] += cnt[b];
		for (size_t i = 0; i < n; i++)
			tmp[cnt[(v[i] >> shift) & 0xff]++] = v[i];
		memcpy(v, tmp, n * sizeof *v);
	}
}

static void sort_nodes(struct feature_node *v, struct feature_node *tmp, size_t n)
{
	if (n < 2)
		return;
	for (int shift = 0; shift < 32; shift += 8) {
		size_t cnt[257] = {0};
		for (size_t i = 0; i < n; i++)
			cnt[(((unsigned)v[i].index >> shift) & 0xff) + 1]++;
		if (cnt[1] == n)
			continue; /* every key has this digit 0 */
		for (int b = 0; b < 256; b++)
			cnt[b + 1] += cnt[b];
		for (size_t i = 0; i < n; i++)
			tmp[cnt[((unsigned)v[i].index >> shift) & 0xff]++] = v[i];
		memcpy(v, tmp, n * sizeof *v);
	}
}

static inline bool word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static inline unsigned char fold_byte(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	if (c >= '0' && c <= '9')
		return '0';
	return c;
}

/* The hashes of every feature occurrence in text. */
static void feature_hashes(const char *text, struct hvec *h)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t len = strnlen(text, FEATURE_TEXT_MAX);
	uint64_t prev = 0;
	bool have_prev = false;
	size_t i = 0;
	while (i < len) {
		if (!word_byte(s[i])) {
			i++;
			continue;
		}
		unsigned char w[WORD_MAX + 2];
		size_t wl = 0;
		w[wl++] = '<';
		while (i < len && word_byte(s[i])) {
			if (wl <= WORD_MAX)
				w[wl++] = fold_byte(s[i]);
			i++;
		}
		w[wl++] = '>';
		uint64_t uh = hash_bytes(SEED_WORD, w + 1, wl - 2);
		hvec_push(h, uh);
		if (have_prev)
			hvec_push(h, fmix64(prev * 0x9e3779b97f4a7c15ULL + uh + SEED_BIGRAM));
		prev = uh;
		have_prev = true;
		for (size_t n = 3; n <= 5; n++)
			for (size_t k = 0; k + n <= wl; k++)
				hvec_push(h, hash_bytes(SEED_CHAR + n, w + k, n));
	}
}

/* The feature vector of text: sorted nodes, L2-normalised, bias appended,
 * {-1} terminated. Returns owned (free()). */
static struct feature_node *featurize(const char *text, int bits)
{
	struct hvec h = {0};
	feature_hashes(text, &h);
	void *tmp = sl_xmalloc((h.n + 2) * SL_MAX(sizeof(uint64_t), sizeof(struct feature_node)));
	sort_u64(h.v, tmp, h.n);
	struct feature_node *x = sl_xmalloc((h.n + 2) * sizeof *x);
	uint64_t mask = (1ULL << bits) - 1;
	size_t nx = 0;
	for (size_t i = 0; i < h.n;) {
		size_t j = i;
		while (j < h.n && h.v[j] == h.v[i])
			j++;
		double v = 1.0 + log((double)(j - i));
		x[nx].index = (int)(h.v[i] & mask) + 1;
		x[nx].value = (h.v[i] >> 63) ? -v : v;
		nx++;
		i = j;
	}
	free(h.v);
	sort_nodes(x, tmp, nx);
	free(tmp);
	size_t m = 0;
	double norm = 0;
	for (size_t i = 0; i < nx;) {
		struct feature_node acc = x[i];
		size_t j = i + 1;
		while (j < nx && x[j].index == acc.index)
			acc.value += x[j++].value;
		if (acc.value != 0) {
			x[m++] = acc;
			norm += acc.value * acc.value;
		}
		i = j;
	}
	norm = sqrt(norm);
	for (size_t i = 0; i < m && norm > 0; i++)
		x[i].value /= norm;
	x[m].index = (1 << bits) + 1; /* the bias feature */
	x[m].value = 1.0;
	x[m + 1].index = -1;
	x[m + 1].value = 0;
	return x;
}

/* ---- probabilities --------------------------------------------------------------- */

/* One-vs-rest scores in label order (a label the model lacks: -inf-ish). */
static void scores(const struct model *lm, const int *class_label, size_t nlabels, const struct feature_node *x,
		   double *z)
{
	double dec[LOCAL_LABELS_MAX];
	for (size_t i = 0; i < nlabels; i++)
		z[i] = -1e9;
	predict_values(lm, x, dec);
	int nc = get_nr_class(lm);
	if (nc == 2) {
		z[class_label[0]] = dec[0];
		z[class_label[1]] = 0;
	} else {
		for (int i = 0; i < nc; i++)
			z[class_label[i]] = dec[i];
	}
}

/* p = softmax(z * beta); returns the index of the largest. */
static size_t softmax(const double *z, size_t n, double beta, double *p)
{
	size_t best = 0;
	for (size_t i = 1; i < n; i++)
		if (z[i] > z[best])
			best = i;
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		p[i] = exp((z[i] - z[best]) * beta);
		sum += p[i];
	}
	for (size_t i = 0; i < n; i++)
		p[i] /= sum;
	return best;
}

/* Mean negative log-likelihood of the true labels at inverse temperature beta. */
static double nll(const double *z, const int *y, size_t n, size_t k, double beta)
{
	double s = 0;
	for (size_t i = 0; i < n; i++) {
		const double *zi = z + i * k;
		double mx = zi[0];
		for (size_t j = 1; j < k; j++)
			mx = zi[j] > mx ? zi[j] : mx;
		double sum = 0;
		for (size_t j = 0; j < k; j++)
			sum += exp((zi[j] - mx) * beta);
		s += -((zi[y[i]] - mx) * beta - log(sum));
	}
	return n ? s / (double)n : 0;
}

/* The temperature that minimises the NLL (golden section over 1/T, where
 * the NLL is convex), within [0.05, 20]. */
static double fit_temperature(const double *z, const int *y, size_t n, size_t k)
{
	const double g = (sqrt(5.0) - 1) / 2;
	double a = 0.05, b = 20.0;
	double c = b - g * (b - a), d = a + g * (b - a);
	double fc = nll(z, y, n, k, c), fd = nll(z, y, n, k, d);
	for (int it = 0; it < 80 && b - a > 1e-5; it++) {
		if (fc < fd) {
			b = d, d = c, fd = fc;
			c = b - g * (b - a);
			fc = nll(z, y, n, k, c);
		} else {
			a = c, c = d, fc = fd;
			d = a + g * (b - a);
			fd = nll(z, y, n, k, d);
		}
	}
	return 1.0 / ((a + b) / 2);
}

/* ---- metrics ------------------------------------------------------------------- */

struct tally {
	size_t k, n, correct;
	size_t *confusion; /* k*k */
	double conf_sum;
	double bin_conf[ECE_BINS];
	size_t bin_n[ECE_BINS], bin_ok[ECE_BINS];
};

static void tally_init(struct tally *t, size_t k)
{
	memset(t, 0, sizeof *t);
	t->k = k;
	t->confusion = sl_xcalloc(k * k, sizeof *t->confusion);
}

/* y < 0: a label the model does not know (counted wrong). */
static void tally_add(struct tally *t, int y, size_t pred, double conf)
{
	t->n++;
	bool ok = y >= 0 && (size_t)y == pred;
	t->correct += ok;
	if (y >= 0)
		t->confusion[(size_t)y * t->k + pred]++;
	t->conf_sum += conf;
	int b = (int)(conf * ECE_BINS);
	b = b < 0 ? 0 : b >= ECE_BINS ? ECE_BINS - 1 : b;
	t->bin_n[b]++;
	t->bin_ok[b] += ok;
	t->bin_conf[b] += conf;
}

static double tally_ece(const struct tally *t)
{
	double e = 0;
	for (int b = 0; b < ECE_BINS; b++)
		if (t->bin_n[b])
			e += fabs((double)t->bin_ok[b] - t->bin_conf[b]) / (double)t->n;
	return e;
}

/* Per-label precision/recall/F1 (arrays may be NULL); returns the macro-F1. */
static double tally_f1(const struct tally *t, double *prec, double *rec, double *f1, size_t *support)
{
	double macro = 0;
	for (size_t c = 0; c < t->k; c++) {
		size_t tp = t->confusion[c * t->k + c], col = 0, row = 0;
		for (size_t j = 0; j < t->k; j++) {
			col += t->confusion[j * t->k + c];
			row += t->confusion[c * t->k + j];
		}
		double p = col ? (double)tp / (double)col : 0, r = row ? (double)tp / (double)row : 0;
		double f = p + r > 0 ? 2 * p * r / (p + r) : 0;
		if (prec)
			prec[c] = p, rec[c] = r, f1[c] = f, support[c] = row;
		macro += f;
	}
	return t->k ? macro / (double)t->k : 0;
}

static void tally_free(struct tally *t)
{
	free(t->confusion);
	t->confusion = NULL;
}

/* ---- reading labelled JSONL ------------------------------------------------------- */

struct example {
	char *text;
	char *label_s; /* until labels are sorted */
	int y;
};

struct dataset {
	struct example *ex;
	size_t n;
	char **labels; /* sorted, unique */
	size_t nlabels;
	char sha256[65];
};

static void dataset_free(struct dataset *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->ex[i].text);
		free(d->ex[i].label_s);
	}
	free(d->ex);
	for (size_t i = 0; i < d->nlabels; i++)
		free(d->labels[i]);
	free(d->labels);
	memset(d, 0, sizeof *d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int label_index(char *const *labels, size_t n, const char *s)
{
	char *const *hit = bsearch(&s, labels, n, sizeof *labels, cmp_str);
	return hit ? (int)(hit - labels) : -1;
}

/* Reads path's examples. With fixed_labels (an eval) labels are not
 * collected: y is the index in fixed_labels or -1. */
static int dataset_read(const char *path, struct dataset *d, char *const *fixed_labels, size_t nfixed,
			struct sl_err *err)
{
	memset(d, 0, sizeof *d);
	char *data = NULL;
	size_t len = 0;
	int rc = sl_file_read(path, SL_BUF_MAX_FILE, &data, &len, err);
	if (rc)
		return rc;
	sl_sha256_hex(data, len, d->sha256);
	size_t cap = 0;
	int line = 0;
	for (char *p = data; p < data + len;) {
		char *nl = memchr(p, '\n', (size_t)(data + len - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
		line++;
		char *cur = p;
		p += ll + (nl ? 1 : 0);
		size_t k = 0;
		while (k < ll && (cur[k] == ' ' || cur[k] == '\t' || cur[k] == '\r'))
			k++;
		if (k == ll)
			continue;
		json_error_t je;
		json_t *o = json_loadb(cur, ll, JSON_REJECT_DUPLICATES, &je);
		const char *why = NULL;
		char jmsg[256];
		json_t *t = json_object_get(o, "text"), *l = json_object_get(o, "label");
		if (!o) {
			snprintf(jmsg, sizeof jmsg, "not JSON: %s (column %d)", je.text, je.column);
			why = jmsg;
		} else if (!json_is_object(o))
			why = "want an object {\"text\": \"...\", \"label\": \"...\"}";
		else if (!json_is_string(t))
			why = "\"text\" must be a string";
		else if (!json_is_string(l) || json_string_length(l) == 0)
			why = "\"label\" must be a non-empty string";
		else if (json_string_length(l) >= LOCAL_LABEL_MAX)
			why = "\"label\" is too long";
		else if (strlen(json_string_value(l)) != json_string_length(l) ||
			 strlen(json_string_value(t)) != json_string_length(t))
			why = "a string holds a NUL character";
		else if (d->n >= EXAMPLES_MAX)
			why = "too many examples";
		if (why) {
			json_decref(o);
			free(data);
			dataset_free(d);
			return sl_err_setloc(err, SL_EINVAL, path, line, 0, "%s", why);
		}
		if (d->n == cap) {
			cap = cap ? cap * 2 : 256;
			d->ex = sl_xrealloc(d->ex, cap * sizeof *d->ex);
		}
		struct example *e = &d->ex[d->n++];
		e->text = sl_strdup(json_string_value(t));
		e->label_s = sl_strdup(json_string_value(l));
		e->y = fixed_labels ? label_index(fixed_labels, nfixed, e->label_s) : -1;
		json_decref(o);
	}
	free(data);
	if (d->n == 0) {
		dataset_free(d);
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: no examples", path);
	}
	if (fixed_labels)
		return 0;
	char **all = sl_xmalloc(d->n * sizeof *all);
	for (size_t i = 0; i < d->n; i++)
		all[i] = d->ex[i].label_s;
	qsort(all, d->n, sizeof *all, cmp_str);
	d->labels = sl_xmalloc(d->n * sizeof *d->labels);
	for (size_t i = 0; i < d->n; i++)
		if (i == 0 || strcmp(all[i], all[i - 1]) != 0)
			d->labels[d->nlabels++] = sl_strdup(all[i]);
	free(all);
	if (d->nlabels > LOCAL_LABELS_MAX) {
		dataset_free(d);
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: more than %d labels", path, LOCAL_LABELS_MAX);
	}
	for (size_t i = 0; i < d->n; i++)
		d->ex[i].y = label_index(d->labels, d->nlabels, d->ex[i].label_s);
	return 0;
}

/* ---- training ------------------------------------------------------------------ */

bool local_clf_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > LOCAL_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

static struct model *train_on(struct feature_node **x, const struct dataset *d, const size_t *rows, size_t nrows,
			      int bits, double C)
{
	struct problem prob = {0};
	prob.l = (int)nrows;
	prob.n = (1 << bits) + 1;
	prob.bias = 1.0;
	prob.y = sl_xmalloc(nrows * sizeof *prob.y);
	prob.x = sl_xmalloc(nrows * sizeof *prob.x);
	for (size_t i = 0; i < nrows; i++) {
		prob.y[i] = d->ex[rows[i]].y;
		prob.x[i] = x[rows[i]];
	}
	struct parameter param = {0};
	param.solver_type = L2R_LR;
	param.C = C;
	param.eps = 0.01;
	param.p = 0.1;
	SL_ASSERT(check_parameter(&prob, &param) == NULL);
	struct model *m = train(&prob, &param);
	free(prob.y);
	free(prob.x);
	return m;
}

static int *class_map(const struct model *m)
{
	int nc = get_nr_class(m);
	int *cl = sl_xmalloc((size_t)nc * sizeof *cl);
	get_labels(m, cl);
	return cl;
}

void local_train_report_free(struct local_train_report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->nlabels; i++)
		free(rep->labels[i]);
	free(rep->labels);
	free(rep->counts);
	rep->labels = NULL;
	rep->counts = NULL;
	rep->nlabels = 0;
}

/* Writes liblinear's model atomically (save_model writes in place). */
static int save_liblinear(const char *path, const struct model *m, struct sl_err *err)
{
	char *tmp = sl_asprintf("%s.tmp.%d", path, (int)getpid());
	if (save_model(tmp, m) != 0) {
		unlink(tmp);
		free(tmp);
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: cannot write the model", path);
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		free(tmp);
		return sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: %s", path, strerror(e));
	}
	free(tmp);
	return 0;
}

static json_t *features_doc(int bits)
{
	return json_pack("{s:s, s:i, s:[i,i], s:[i,i], s:s, s:s, s:s, s:b, s:b, s:s}", "hash", "fnv1a64+fmix64",
			 "hash_bits", bits, "word_ngrams", 1, 2, "char_ngrams", 3, 5, "digits", "0", "tf",
			 "sublinear", "norm", "l2", "signed", 1, "lowercase", 1, "bias", "1");
}

int local_clf_train(const char *jsonl_path, const char *out_dir, const char *name, const struct local_train_opts *o,
		    struct local_train_report *rep, struct sl_err *err)
{
	pthread_once(&quiet_once, quiet_init);
	if (!local_clf_name_ok(name))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE,
				  "model name '%s' wants 1-%d characters of A-Z a-z 0-9 _ . - (not starting with .)",
				  name ? name : "", LOCAL_NAME_MAX);
	double C = o && o->C > 0 ? o->C : LOCAL_C_DEFAULT;
	int bits = o && o->hash_bits ? o->hash_bits : LOCAL_HASH_BITS_DEFAULT;
	int folds = o && o->folds ? o->folds : LOCAL_FOLDS_DEFAULT;
	if (bits < 10 || bits > 24)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "hash bits must be from 10 to 24");
	if (folds < 2 || folds > 20)
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "folds must be from 2 to 20");
	if (!(C <= 1e6))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "C must be above 0 and at most 1e6");

	struct dataset d;
	int rc = dataset_read(jsonl_path, &d, NULL, 0, err);
	if (rc)
		return rc;
	size_t k = d.nlabels, n = d.n;
	size_t *counts = sl_xcalloc(k, sizeof *counts);
	for (size_t i = 0; i < n; i++)
		counts[d.ex[i].y]++;
	if (k < 2) {
		free(counts);
		dataset_free(&d);
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: wants at least 2 labels", jsonl_path);
	}
	size_t minc = n;
	for (size_t c = 0; c < k; c++)
		minc = SL_MIN(minc, counts[c]);
	if (minc < 2) {
		size_t c = 0;
		while (counts[c] >= 2)
			c++;
		rc = sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: label '%s' has %zu example (want at least 2)",
				jsonl_path, d.labels[c], counts[c]);
		free(counts);
		dataset_free(&d);
		return rc;
	}
	if ((size_t)folds > minc)
		folds = (int)minc;

	struct feature_node **x = sl_xmalloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = featurize(d.ex[i].text, bits);

	/* stratified folds: the r-th example of each label goes to fold r % folds */
	int *fold = sl_xmalloc(n * sizeof *fold);
	size_t *seen = sl_xcalloc(k, sizeof *seen);
	for (size_t i = 0; i < n; i++)
		fold[i] = (int)(seen[d.ex[i].y]++ % (size_t)folds);
	free(seen);

	double *z = sl_xmalloc(n * k * sizeof *z);
	int *y = sl_xmalloc(n * sizeof *y);
	size_t *rows = sl_xmalloc(n * sizeof *rows);
	for (size_t i = 0; i < n; i++)
		y[i] = d.ex[i].y;
	for (int f = 0; f < folds; f++) {
		size_t nr = 0;
		for (size_t i = 0; i < n; i++)
			if (fold[i] != f)
				rows[nr++] = i;
		struct model *m = train_on(x, &d, rows, nr, bits, C);
		int *cl = class_map(m);
		for (size_t i = 0; i < n; i++)
			if (fold[i] == f)
				scores(m, cl, k, x[i], z + i * k);
		free(cl);
		free_and_destroy_model(&m);
	}
	double T = fit_temperature(z, y, n, k);
	struct tally raw, cal;
	tally_init(&raw, k);
	tally_init(&cal, k);
	double *p = sl_xmalloc(k * sizeof *p);
	for (size_t i = 0; i < n; i++) {
		size_t b = softmax(z + i * k, k, 1.0, p);
		tally_add(&raw, y[i], b, p[b]);
		b = softmax(z + i * k, k, 1.0 / T, p);
		tally_add(&cal, y[i], b, p[b]);
	}
	double cv_acc = (double)cal.correct / (double)n, cv_f1 = tally_f1(&cal, NULL, NULL, NULL, NULL);
	double ece_raw = tally_ece(&raw), ece = tally_ece(&cal);
	tally_free(&raw);
	tally_free(&cal);

	for (size_t i = 0; i < n; i++)
		rows[i] = i;
	struct model *m = train_on(x, &d, rows, n, bits, C);
	int *cl = class_map(m);
	size_t train_ok = 0;
	for (size_t i = 0; i < n; i++) {
		scores(m, cl, k, x[i], z);
		train_ok += softmax(z, k, 1.0, p) == (size_t)y[i];
	}
	free(cl);
	double train_acc = (double)train_ok / (double)n;
	free(p);
	free(z);
	free(y);
	free(rows);
	free(fold);
	for (size_t i = 0; i < n; i++)
		free(x[i]);
	free(x);

	char *mfile = sl_asprintf("%s.liblinear", name), *jfile = sl_asprintf("%s.json", name);
	char *mpath = sl_path_join(out_dir, mfile), *jpath = sl_path_join(out_dir, jfile);
	if (sl_mkdirs(out_dir, 0755) != 0)
		rc = sl_err_set(err, SL_EIO, SL_CLASS_NONE, "%s: cannot create the folder", out_dir);
	if (!rc)
		rc = save_liblinear(mpath, m, err);
	free_and_destroy_model(&m);
	char msha[65] = "";
	if (!rc) {
		char *mdata = NULL;
		size_t mlen = 0;
		rc = sl_file_read(mpath, SL_BUF_MAX_FILE, &mdata, &mlen, err);
		if (!rc)
			sl_sha256_hex(mdata, mlen, msha);
		free(mdata);
	}
	if (!rc) {
		char created[32];
		sl_time_format(sl_now_ms(), created);
		const char *base = strrchr(jsonl_path, '/') ? strrchr(jsonl_path, '/') + 1 : jsonl_path;
		json_t *labels = json_array(), *cnt = json_object();
		for (size_t c = 0; c < k; c++) {
			json_array_append_new(labels, json_string(d.labels[c]));
			json_object_set_new(cnt, d.labels[c], json_integer((json_int_t)counts[c]));
		}
		json_t *doc = json_pack(
			"{s:s, s:i, s:s, s:o, s:o, s:s, s:f, s:f, s:o, s:{s:I, s:o, s:f, s:i, s:f, s:f, s:f, s:f, s:f}, "
			"s:s, s:s, s:s, s:s, s:s}",
			"format", CLF_FORMAT, "version", CLF_VERSION, "name", name, "labels", labels, "features",
			features_doc(bits), "solver", "L2R_LR", "C", C, "temperature", T, "counts", cnt, "metrics",
			"examples", (json_int_t)n, "held_out", json_string("cross-validation"), "cv_accuracy",
			cv_acc, "folds", folds, "cv_macro_f1", cv_f1, "ece_raw", ece_raw, "ece", ece,
			"train_accuracy", train_acc, "temperature", T, "training_file", base, "training_sha256",
			d.sha256, "model_file", mfile, "model_sha256", msha, "created", created);
		SL_ASSERT(doc);
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
		json_decref(doc);
		struct sl_buf b;
		sl_buf_init(&b, SL_BUF_MAX_FILE);
		sl_buf_adds(&b, text);
		sl_buf_addc(&b, '\n');
		free(text);
		rc = sl_file_write_atomic(jpath, sl_buf_str(&b), b.len, err);
		sl_buf_free(&b);
	}
	if (!rc && rep) {
		memset(rep, 0, sizeof *rep);
		rep->nlabels = k;
		rep->examples = n;
		rep->labels = d.labels;
		d.labels = NULL;
		d.nlabels = 0;
		rep->counts = counts;
		counts = NULL;
		rep->C = C;
		rep->hash_bits = bits;
		rep->folds = folds;
		rep->train_accuracy = train_acc;
		rep->cv_accuracy = cv_acc;
		rep->cv_macro_f1 = cv_f1;
		rep->temperature = T;
		rep->ece_raw = ece_raw;
		rep->ece = ece;
		memcpy(rep->sha256, d.sha256, sizeof rep->sha256);
		snprintf(rep->json_path, sizeof rep->json_path, "%s", jpath);
		snprintf(rep->model_path, sizeof rep->model_path, "%s", mpath);
	}
	free(counts);
	free(mfile);
	free(jfile);
	free(mpath);
	free(jpath);
	dataset_free(&d);
	return rc;
}

/* ---- loading and predicting --------------------------------------------------------- */

void local_clf_free(struct local_clf *m)
{
	if (!m)
		return;
	if (m->lm)
		free_and_destroy_model(&m->lm);
	json_decref(m->info);
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->class_label);
	free(m);
}

/* Reads liblinear's save_model text (the header this file writes, then
 * the weights) from memory. liblinear's own load_model switches the
 * process's locale (setlocale) while it reads, which is not safe while
 * other threads run; this reads the same format with strtod (Sluice keeps
 * the "C" locale). Returns a model free_and_destroy_model frees, or NULL
 * with *why. */
static struct model *parse_liblinear(const char *p, const char **why)
{
	struct model *m = calloc(1, sizeof *m);
	if (!m) {
		*why = "out of memory";
		return NULL;
	}
	m->bias = -1;
	bool have_solver = false;
	*why = NULL;
	for (;;) {
		char key[32];
		size_t k = 0;
		while (*p && *p != ' ' && *p != '\n' && k < sizeof key - 1)
			key[k++] = *p++;
		key[k] = '\0';
		if (strcmp(key, "w") == 0 && *p == '\n') {
			p++;
			break;
		}
		if (*p != ' ') {
			*why = "not a liblinear model (header)";
			goto fail;
		}
		char *end;
		if (strcmp(key, "solver_type") == 0) {
			have_solver = strncmp(p, " L2R_LR\n", 8) == 0;
			if (!have_solver) {
				*why = "a solver other than L2R_LR";
				goto fail;
			}
			p += 8;
			continue;
		} else if (strcmp(key, "nr_class") == 0) {
			long v = strtol(p, &end, 10);
			if (end == p || v < 2 || v > LOCAL_LABELS_MAX || m->label)
				goto bad;
			m->nr_class = (int)v;
			p = end;
		} else if (strcmp(key, "label") == 0) {
			if (m->nr_class < 2 || m->label)
				goto bad;
			m->label = malloc((size_t)m->nr_class * sizeof *m->label);
			if (!m->label)
				goto bad;
			for (int i = 0; i < m->nr_class; i++) {
				long v = strtol(p, &end, 10);
				if (end == p || v < 0 || v >= m->nr_class)
					goto bad;
				m->label[i] = (int)v;
				p = end;
			}
		} else if (strcmp(key, "nr_feature") == 0) {
			long v = strtol(p, &end, 10);
			if (end == p || v < 1 || v > (1L << 24))
				goto bad;
			m->nr_feature = (int)v;
			p = end;
		} else if (strcmp(key, "bias") == 0) {
			m->bias = strtod(p, &end);
			if (end == p)
				goto bad;
			p = end;
		} else {
			*why = "not a liblinear model this build reads (header key)";
			goto fail;
		}
		while (*p == ' ')
			p++;
		if (*p++ != '\n')
			goto bad;
	}
	if (!have_solver || !m->label || m->nr_feature < 1)
		goto bad;
	m->param.solver_type = L2R_LR;
	size_t nr_w = m->nr_class == 2 ? 1 : (size_t)m->nr_class;
	size_t n = (size_t)m->nr_feature + (m->bias >= 0 ? 1 : 0), total = n * nr_w;
	if (total > strlen(p) / 2 + 1) { /* each weight takes 2 bytes at least ("0 ") */
		*why = "the weights are cut short or not numbers";
		goto fail;
	}
	m->w = malloc(total * sizeof *m->w);
	if (!m->w)
		goto bad;
	for (size_t i = 0; i < total; i++) {
		char *end;
		double v = strtod(p, &end);
		if (end == p || !isfinite(v)) {
			*why = "the weights are cut short or not numbers";
			goto fail;
		}
		m->w[i] = v;
		p = end;
	}
	while (*p == ' ' || *p == '\n')
		p++;
	if (*p) {
		*why = "more weights than the header says";
		goto fail;
	}
	return m;
bad:
	*why = "not a liblinear model (header)";
fail:
	free_and_destroy_model(&m);
	return NULL;
}

static int load_fail(struct local_clf *m, struct sl_err *err, const char *path, const char *why)
{
	local_clf_free(m);
	return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "%s: %s", path, why);
}

int local_clf_load(const char *dir, const char *name, struct local_clf **out, struct sl_err *err)
{
	*out = NULL;
	if (!local_clf_name_ok(name))
		return sl_err_set(err, SL_EINVAL, SL_CLASS_NONE, "'%s' is not a model name", name ? name : "");
	char *jfile = sl_asprintf("%s.json", name);
	char *jpath = sl_path_join(dir, jfile);
	free(jfile);
	struct stat st;
	if (stat(jpath, &st) != 0) {
		int rc = sl_err_set(err, SL_ENOTFOUND, SL_CLASS_NONE, "%s: no such model (train it with `sluice model "
								      "train`)", jpath);
		free(jpath);
		return rc;
	}
	struct local_clf *m = sl_xcalloc(1, sizeof *m);
	json_error_t je;
	m->info = json_load_file(jpath, JSON_REJECT_DUPLICATES, &je);
	char why[512];
	int rc = 0;
	if (!m->info) {
		snprintf(why, sizeof why, "not JSON: %s (line %d)", je.text, je.line);
		rc = load_fail(m, err, jpath, why);
		free(jpath);
		return rc;
	}
	json_t *labels = json_object_get(m->info, "labels"), *feat = json_object_get(m->info, "features");
	json_t *ref = features_doc(json_integer_value(json_object_get(feat, "hash_bits")));
	const char *mfile = json_string_value(json_object_get(m->info, "model_file"));
	const char *msha = json_string_value(json_object_get(m->info, "model_sha256"));
	m->temperature = json_number_value(json_object_get(m->info, "temperature"));
	m->hash_bits = (int)json_integer_value(json_object_get(feat, "hash_bits"));
	const char *bad = NULL;
	if (!json_is_object(m->info) ||
	    strcmp(json_string_value(json_object_get(m->info, "format")) ?: "", CLF_FORMAT) != 0)
		bad = "not a local classifier model (format)";
	else if (json_integer_value(json_object_get(m->info, "version")) != CLF_VERSION)
		bad = "a model version this build does not read";
	else if (!json_is_array(labels) || json_array_size(labels) < 2 || json_array_size(labels) > LOCAL_LABELS_MAX)
		bad = "\"labels\" must be an array of 2 or more strings";
	else if (!json_equal(feat, ref) || m->hash_bits < 10 || m->hash_bits > 24)
		bad = "trained with feature settings this build does not know";
	else if (!(m->temperature > 0 && m->temperature < 1000))
		bad = "\"temperature\" must be a positive number";
	else if (!mfile || !local_clf_name_ok(mfile) || !msha)
		bad = "\"model_file\" / \"model_sha256\" missing";
	json_decref(ref);
	if (bad) {
		rc = load_fail(m, err, jpath, bad);
		free(jpath);
		return rc;
	}
	m->nlabels = json_array_size(labels);
	m->labels = sl_xcalloc(m->nlabels + 1, sizeof *m->labels);
	for (size_t i = 0; i < m->nlabels; i++) {
		const char *s = json_string_value(json_array_get(labels, i));
		if (!s || (i > 0 && strcmp(m->labels[i - 1], s) >= 0)) {
			rc = load_fail(m, err, jpath, "\"labels\" must be sorted, unique strings");
			free(jpath);
			return rc;
		}
		m->labels[i] = sl_strdup(s);
	}
	char *mpath = sl_path_join(dir, mfile);
	char *mdata = NULL;
	size_t mlen = 0;
	rc = sl_file_read(mpath, SL_BUF_MAX_FILE, &mdata, &mlen, err);
	if (rc) {
		local_clf_free(m);
		free(mpath);
		free(jpath);
		if (rc == SL_EIO && err)
			err->code = SL_EINVAL; /* the .json names a file that is not there */
		return rc == SL_EIO ? SL_EINVAL : rc;
	}
	char sha[65];
	sl_sha256_hex(mdata, mlen, sha);
	if (strcmp(sha, msha) != 0) {
		free(mdata);
		rc = load_fail(m, err, mpath, "does not match its .json (model_sha256): retrain");
		free(mpath);
		free(jpath);
		return rc;
	}
	m->lm = parse_liblinear(mdata, &bad);
	free(mdata);
	if (bad)
		; /* parse_liblinear said why */
	else if (m->lm->nr_class != (int)m->nlabels)
		bad = "its classes do not match the labels of the .json";
	else if (get_nr_feature(m->lm) != (1 << m->hash_bits) || m->lm->bias != 1.0)
		bad = "its feature count or bias does not match the .json";
	if (!bad) {
		m->nr_class = m->lm->nr_class;
		m->class_label = class_map(m->lm);
		for (int i = 0; i < m->nr_class; i++)
			if (m->class_label[i] < 0 || m->class_label[i] >= (int)m->nlabels)
				bad = "its class numbers do not match the labels of the .json";
	}
	if (bad) {
		rc = load_fail(m, err, mpath, bad);
		free(mpath);
		free(jpath);
		return rc;
	}
	free(mpath);
	free(jpath);
	*out = m;
	return 0;
}

int local_clf_predict(const struct local_clf *m, const char *text, const char **label, double *confidence,
		      double *probs)
{
	double z[LOCAL_LABELS_MAX], p[LOCAL_LABELS_MAX];
	struct feature_node *x = featurize(text ? text : "", m->hash_bits);
	scores(m->lm, m->class_label, m->nlabels, x, z);
	free(x);
	size_t best = softmax(z, m->nlabels, 1.0 / m->temperature, p);
	if (label)
		*label = m->labels[best];
	if (confidence)
		*confidence = p[best];
	if (probs)
		memcpy(probs, p, m->nlabels * sizeof *p);
	return 0;
}

const char *const *local_clf_labels(const struct local_clf *m, size_t *n)
{
	if (n)
		*n = m->nlabels;
	return (const char *const *)m->labels;
}

const json_t *local_clf_info(const struct local_clf *m)
{
	return m->info;
}

/* ---- evaluation ------------------------------------------------------------------- */

void local_eval_free(struct local_eval *e)
{
	if (!e)
		return;
	free(e->precision);
	free(e->recall);
	free(e->f1);
	free(e->support);
	free(e->confusion);
	memset(e, 0, sizeof *e);
}

int local_clf_eval(const struct local_clf *m, const char *jsonl_path, struct local_eval *out, struct sl_err *err)
{
	memset(out, 0, sizeof *out);
	struct dataset d;
	int rc = dataset_read(jsonl_path, &d, m->labels, m->nlabels, err);
	if (rc)
		return rc;
	size_t k = m->nlabels;
	struct tally t;
	tally_init(&t, k);
	double p[LOCAL_LABELS_MAX];
	for (size_t i = 0; i < d.n; i++) {
		const char *lab;
		double conf;
		local_clf_predict(m, d.ex[i].text, &lab, &conf, p);
		size_t best = (size_t)label_index(m->labels, k, lab);
		tally_add(&t, d.ex[i].y, best, conf);
		out->unknown += d.ex[i].y < 0;
	}
	out->nlabels = k;
	out->labels = (const char *const *)m->labels;
	out->n = t.n;
	out->correct = t.correct;
	out->accuracy = t.n ? (double)t.correct / (double)t.n : 0;
	out->ece = tally_ece(&t);
	out->mean_confidence = t.n ? t.conf_sum / (double)t.n : 0;
	out->precision = sl_xcalloc(k, sizeof(double));
	out->recall = sl_xcalloc(k, sizeof(double));
	out->f1 = sl_xcalloc(k, sizeof(double));
	out->support = sl_xcalloc(k, sizeof(size_t));
	out->macro_f1 = tally_f1(&t, out->precision, out->recall, out->f1, out->support);
	out->confusion = t.confusion;
	dataset_free(&d);
	return 0;
}
