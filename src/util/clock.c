/*
 * clock.c: wall and monotonic time, durations, RFC 3339, ids, randomness,
 * hashing and logging.
 */
#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- time ----------------------------------------------------------------- */

static _Atomic int64_t fake_now_ms;

void sl_clock_set(int64_t ms)
{
	atomic_store(&fake_now_ms, ms);
}

static int64_t real_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SLUICE_FAKE_CLOCK (tests only: schedules after a downtime without
 * waiting hours): an RFC 3339 time or epoch ms the wall clock reads at
 * start, then going on at the real pace. */
static int64_t env_offset_ms;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void clock_env_init(void)
{
	const char *v = getenv("SLUICE_FAKE_CLOCK");
	if (!v || !*v)
		return;
	int64_t t;
	if (sl_time_parse(v, &t) != 0 && sl_parse_i64(v, &t) != 0) {
		fprintf(stderr, "sluice: SLUICE_FAKE_CLOCK is not an RFC 3339 time or epoch ms; ignored\n");
		return;
	}
	env_offset_ms = t - real_now_ms();
}

int64_t sl_now_ms(void)
{
	int64_t f = atomic_load(&fake_now_ms);
	if (f > 0)
		return f;
	pthread_once(&env_once, clock_env_init);
	return real_now_ms() + env_offset_ms;
}

int64_t sl_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sl_mono_ms(void)
{
	return sl_mono_us() / 1000;
}

int sl_parse_duration_ms(const char *s, int64_t *out)
{
	if (!s || !*s)
		return SL_EINVAL;
	int64_t total = 0;
	const char *p = s;
	bool any = false;
	while (*p) {
		if (*p < '0' || *p > '9')
			return SL_EINVAL;
		int64_t v = 0;
		while (*p >= '0' && *p <= '9') {
			if (v > INT64_MAX / 10 - 10)
				return SL_EINVAL;
			v = v * 10 + (*p++ - '0');
		}
		int64_t unit;
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60000;
			p++;
		} else if (*p == 'h') {
			unit = 3600000;
			p++;
		} else if (*p == 'd') {
			unit = 86400000;
			p++;
		} else if (*p == '\0' && !any) {
			unit = 1; /* a bare number is milliseconds */
		} else {
			return SL_EINVAL;
		}
		if (v > INT64_MAX / unit)
			return SL_EINVAL;
		total += v * unit;
		any = true;
	}
	*out = total;
	return 0;
}

void sl_time_format(int64_t ms, char out[32])
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	/* strftime for the fixed-width part; the compiler cannot bound %d. */
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	unsigned frac = (unsigned)(((ms % 1000) + 1000) % 1000);
	out[n++] = '.';
	out[n++] = (char)('0' + frac / 100);
	out[n++] = (char)('0' + frac / 10 % 10);
	out[n++] = (char)('0' + frac % 10);
	out[n++] = 'Z';
	out[n] = '\0';
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no timegm/TZ state is touched. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int sl_time_parse(const char *s, int64_t *ms_out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int Y, M, D, h, mi, se, ms = 0;
	if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D))
		return SL_EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return SL_EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
		return SL_EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || se > 60)
		return SL_EINVAL;
	bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return SL_EINVAL;
	if (*p == '.') {
		p++;
		int n = 0, scale = 100;
		if (*p < '0' || *p > '9')
			return SL_EINVAL;
		while (*p >= '0' && *p <= '9') {
			if (n < 3)
				ms += (*p - '0') * scale, scale /= 10;
			n++;
			p++;
		}
	}
	int64_t off_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return SL_EINVAL;
		off_min = sign * (oh * 60 + om);
	} else {
		return SL_EINVAL;
	}
	if (*p)
		return SL_EINVAL;
	int64_t secs = days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + (se == 60 ? 59 : se);
	*ms_out = (secs - off_min * 60) * 1000 + ms;
	return 0;
}

/* ---- randomness and ids ------------------------------------------------------- */

void sl_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			SL_ASSERT(!"getrandom failed");
		}
		p += r;
		n -= (size_t)r;
	}
}

static _Thread_local uint64_t rng_state;

uint64_t sl_random_below(uint64_t n)
{
	if (n <= 1)
		return 0;
	if (!rng_state)
		sl_random_bytes(&rng_state, sizeof rng_state), rng_state |= 1;
	/* xorshift64*: fast, good enough for jitter; never used for secrets. */
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return (x * 2685821657736338717ULL) % n;
}

void sl_id_new(const char *prefix, char out[SL_ID_MAX])
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	/* Monotonic within a process: the random part is incremented when the
	 * millisecond repeats, so ids created in order sort in order. */
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t last_ms;
	static unsigned char last_rand[10];
	uint64_t ms = (uint64_t)sl_now_ms();
	unsigned char r[10];
	pthread_mutex_lock(&mu);
	if (ms <= last_ms) {
		ms = last_ms;
		memcpy(r, last_rand, sizeof r);
		for (int i = 9; i >= 0 && ++r[i] == 0; i--)
			;
	} else {
		sl_random_bytes(r, sizeof r);
		r[0] &= 0x7f; /* leave room to increment */
	}
	last_ms = ms;
	memcpy(last_rand, r, sizeof r);
	pthread_mutex_unlock(&mu);

	size_t plen = prefix ? strlen(prefix) : 0;
	if (plen > SL_ID_MAX - 27)
		plen = SL_ID_MAX - 27;
	memcpy(out, prefix, plen);
	char *o = out + plen;
	for (int i = 9; i >= 0; i--) /* 48-bit time in 10 chars */
		o[9 - i] = b32[(ms >> (i * 5)) & 31];
	/* 80 random bits in 16 chars */
	uint64_t hi = 0, lo = 0;
	for (int i = 0; i < 5; i++)
		hi = hi << 8 | r[i];
	for (int i = 5; i < 10; i++)
		lo = lo << 8 | r[i];
	for (int i = 0; i < 8; i++)
		o[10 + i] = b32[(hi >> (35 - i * 5)) & 31];
	for (int i = 0; i < 8; i++)
		o[18 + i] = b32[(lo >> (35 - i * 5)) & 31];
	o[26] = '\0';
}

/* ---- hashing ------------------------------------------------------------------- */

void sl_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void sl_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	sl_hex(md, sizeof md, out);
}

void sl_hmac_sha256(const void *key, size_t klen, const void *data, size_t dlen, unsigned char out[32])
{
	unsigned int olen = 32;
	HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &olen);
}

bool sl_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* ---- logging -------------------------------------------------------------------- */

enum sl_log_level sl_log_min_level = SL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void sl_log_set_level(enum sl_log_level lvl)
{
	sl_log_min_level = lvl;
}

int sl_log_parse_level(const char *name)
{
	for (int i = 0; i < (int)SL_ARRAY_LEN(level_names); i++)
		if (name && strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void sl_log_emit(enum sl_log_level lvl, const char *component, const char *msg, ...)
{
	char ts[32];
	sl_time_format(sl_now_ms(), ts);
	struct sl_buf b;
	sl_buf_init(&b, SL_BUF_MAX_LINE);
	sl_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[lvl]);
	sl_buf_add_json_str(&b, component);
	sl_buf_adds(&b, ",\"msg\":");
	sl_buf_add_json_str(&b, msg);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		if (!v)
			continue; /* absent optional field */
		sl_buf_addc(&b, ',');
		sl_buf_add_json_str(&b, k);
		sl_buf_addc(&b, ':');
		sl_buf_add_json_str(&b, v);
	}
	va_end(ap);
	sl_buf_adds(&b, "}\n");
	if (b.err) {
		sl_buf_free(&b);
		return;
	}
	/* One write() per line, so lines from several threads never interleave. */
	ssize_t w = write(2, b.p, b.len);
	(void)w;
	sl_buf_free(&b);
}

static int64_t utc_start(int64_t t_ms, bool month)
{
	time_t t = (time_t)(t_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	if (month)
		tm.tm_mday = 1;
	return (int64_t)timegm(&tm) * 1000;
}

int64_t sl_utc_day_start_ms(int64_t t_ms)
{
	return utc_start(t_ms, false);
}

int64_t sl_utc_month_start_ms(int64_t t_ms)
{
	return utc_start(t_ms, true);
}
