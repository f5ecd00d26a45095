/* timeutil: see timeutil.h. Parsing is by hand rather than strtol/strptime
 * so that signs, spaces and trailing junk are refused instead of skipped. */
#include "timeutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Digits at *p into *v (no sign); advances *p. -1 on none or overflow. */
static int digits(const char **p, int64_t *v)
{
    const char *s = *p;
    int64_t n = 0;
    if (!is_digit(*s))
        return -1;
    for (; is_digit(*s); s++) {
        if (n > (INT64_MAX - (*s - '0')) / 10)
            return -1;
        n = n * 10 + (*s - '0');
    }
    *p = s;
    *v = n;
    return 0;
}

/* Units, largest first; a duration must use them in this order, each at
 * most once, so "1m1m" or "30s1h" is taken for the typo it probably is. */
static const struct unit {
    const char *name;
    int64_t ms;
} units[] = {
    { "w", 7 * 86400000LL }, { "d", 86400000LL }, { "h", 3600000LL },
    { "ms", 1 },             /* before "m" so that "500ms" is not 500m + s */
    { "m", 60000LL },        { "s", 1000LL },
};
#define NUNITS (sizeof units / sizeof units[0])

/* The duration at s in milliseconds. with_ms allows the "ms" unit and
 * decimal fractions ("1.5s"); results must be whole milliseconds. */
static int parse_ms(const char *s, bool with_ms, int64_t *out)
{
    int64_t total = 0, last_unit = INT64_MAX;
    if (!s || !*s)
        return -1;
    while (*s) {
        int64_t whole, frac = 0, scale = 1;
        if (digits(&s, &whole) < 0)
            return -1;
        if (with_ms && *s == '.') {
            s++;
            if (!is_digit(*s))
                return -1;
            for (; is_digit(*s); s++) {
                if (scale >= 1000000000)   /* 9 places is plenty */
                    return -1;
                frac = frac * 10 + (*s - '0');
                scale *= 10;
            }
        }
        const struct unit *u = NULL;
        if (*s == '\0') {
            if (total || last_unit != INT64_MAX)
                return -1;        /* "1m30": a bare number only alone */
            static const struct unit secs = { "", 1000 };
            u = &secs;
        } else {
            for (size_t i = 0; i < NUNITS && !u; i++)
                if (!strncmp(s, units[i].name, strlen(units[i].name)))
                    u = &units[i];
            if (!u || (u->ms == 1 && !with_ms) || u->ms >= last_unit)
                return -1;
            s += strlen(u->name);
            last_unit = u->ms;
        }
        if (whole > INT64_MAX / u->ms)
            return -1;
        int64_t v = whole * u->ms;
        if (frac) {
            /* frac < 1e9 and u->ms <= 6.048e8: the product fits */
            if ((frac * u->ms) % scale)
                return -1;        /* finer than a millisecond */
            v += frac * u->ms / scale;
        }
        if (v > INT64_MAX - total)
            return -1;
        total += v;
    }
    *out = total;
    return 0;
}

int tu_parse_duration(const char *s, int64_t *secs)
{
    int64_t ms;
    if (parse_ms(s, false, &ms) < 0)
        return -1;
    *secs = ms / 1000;
    return 0;
}

int tu_parse_duration_ms(const char *s, int64_t *ms)
{
    return parse_ms(s, true, ms);
}

/* Exactly n digits at *p. */
static int fixed(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return -1;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int64_t tu_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]"; a zone only after a
 * time. The fraction is accepted (and dropped) so that tu_format_iso_ms
 * output can be pasted back in. */
static int parse_stamp(const char *s, time_t *out)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (fixed(&s, 4, &y) < 0 || *s++ != '-' || fixed(&s, 2, &mo) < 0 ||
        *s++ != '-' || fixed(&s, 2, &d) < 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return -1;
    bool utc = false;
    int offset = 0;            /* seconds east of UTC */
    if (*s == ' ' || *s == 'T' || *s == 't') {
        s++;
        if (fixed(&s, 2, &h) < 0 || *s++ != ':' || fixed(&s, 2, &mi) < 0)
            return -1;
        if (*s == ':') {
            s++;
            if (fixed(&s, 2, &sec) < 0)
                return -1;
            if (*s == '.') {
                if (!is_digit(*++s))
                    return -1;
                while (is_digit(*s))
                    s++;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return -1;
        if (*s == 'Z' || *s == 'z') {
            s++;
            utc = true;
        } else if (*s == '+' || *s == '-') {
            int sign = *s++ == '-' ? -1 : 1, oh, om;
            if (fixed(&s, 2, &oh) < 0 || *s++ != ':' || fixed(&s, 2, &om) < 0 ||
                oh > 23 || om > 59)
                return -1;
            utc = true;
            offset = sign * (oh * 3600 + om * 60);
        }
    }
    if (*s)
        return -1;
    if (utc) {
        *out = (time_t)(tu_days_from_civil(y, mo, d) * 86400 +
                        h * 3600 + mi * 60 + sec - offset);
        return 0;
    }
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                     .tm_hour = h, .tm_min = mi, .tm_sec = sec,
                     .tm_isdst = -1, .tm_wday = -1 };
    /* A wall time skipped by a DST change is normalised by mktime. -1 is
     * also a valid result, so failure shows as tm_wday left untouched. */
    time_t t = mktime(&tm);
    if (t == (time_t)-1 && tm.tm_wday == -1)
        return -1;
    *out = t;
    return 0;
}

int tu_parse_when(const char *s, time_t now, time_t *out)
{
    int64_t v;
    if (!s || !*s)
        return -1;
    if (s[0] == '@') {
        const char *p = s + 1;
        if (digits(&p, &v) < 0 || *p || (time_t)v != v)
            return -1;
        *out = (time_t)v;
        return 0;
    }
    /* four digits then '-' is a date; anything else a duration ago */
    if (strlen(s) >= 5 && s[4] == '-')
        return parse_stamp(s, out);
    if (tu_parse_duration(s, &v) < 0)
        return -1;
    if ((int64_t)now < INT64_MIN + v)
        return -1;
    *out = (time_t)((int64_t)now - v);
    return 0;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds and milliseconds, rounding towards the past for negative ms. */
static void split_ms(int64_t ms, time_t *sec, int *rem)
{
    int64_t q = ms / 1000, r = ms % 1000;
    if (r < 0) {
        q--;
        r += 1000;
    }
    *sec = (time_t)q;
    *rem = (int)r;
}

void tu_format_iso_ms(int64_t ms, char *buf, size_t len)
{
    time_t t;
    int rem;
    struct tm tm;
    if (!len)
        return;
    split_ms(ms, &t, &rem);
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
}

void tu_format_local(int64_t ms, char *buf, size_t len)
{
    time_t t;
    int rem;
    struct tm tm;
    if (!len)
        return;
    split_ms(ms, &t, &rem);
    if (!localtime_r(&t, &tm)) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}
