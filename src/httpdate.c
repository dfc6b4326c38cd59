/* httpdate.c: Retry-After in every form BTP services send
 * (calm_parse_retry_after).
 *
 * Accepted (surrounding white space ignored):
 *   delta-seconds   "120"                              (0 .. 2^31-1)
 *   IMF-fixdate     "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850         "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime         "Sun Nov  6 08:49:37 1994"
 *   Go time.String  "2024-11-11 14:59:33 +0000 UTC"   (Service Manager; also
 *                   fractional seconds, any "+hhmm ABBR" zone, an " m=+1.5"
 *                   monotonic suffix)
 *   RFC 3339        "2024-11-11T14:59:33Z", "...+01:00"
 * A date in the past gives 0. Anything else, including "-5", "1.5", an
 * empty value, impossible dates and numbers that overflow, gives -1: the
 * caller then falls back to its own backoff (reliability F2/F3). The parser
 * is strict on purpose: a misread date could make a flow sleep for years. */
#include <string.h>
#include <time.h>

#include "calm.h"

/* Delta-seconds above this are treated as garbage rather than clamped: no
 * service means it, and the caller's backoff is the safer reading. */
#define RA_MAX_DELTA 2147483647.0

/* A cursor over the value; every reader returns 0 on success, -1 on a
 * mismatch (leaving the cursor wherever it got to: callers then give up). */
struct cur {
    const char *p, *e;
};

static int at_end(const struct cur *c)
{
    return c->p == c->e;
}

static int digit(const struct cur *c)
{
    return c->p < c->e && *c->p >= '0' && *c->p <= '9';
}

/* Exactly `min`..`max` digits. */
static int num(struct cur *c, int min, int max, int *out)
{
    int k = 0, v = 0;

    while (k < max && digit(c)) {
        v = v * 10 + (*c->p++ - '0');
        k++;
    }
    *out = v;
    return k >= min ? 0 : -1;
}

static int lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);

    if ((size_t)(c->e - c->p) < n || memcmp(c->p, s, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* One or more spaces (asctime pads the day with a second one). */
static int spaces(struct cur *c)
{
    if (c->p == c->e || *c->p != ' ')
        return -1;
    while (c->p < c->e && *c->p == ' ')
        c->p++;
    return 0;
}

static int letters(struct cur *c, char *out, size_t cap)
{
    size_t k = 0;

    while (c->p < c->e && ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z'))) {
        if (k + 1 < cap)
            out[k] = *c->p;
        k++;
        c->p++;
    }
    out[k < cap ? k : cap - 1] = '\0';
    return k > 0 && k < cap ? 0 : -1;
}

static int month(struct cur *c, int *mon)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char m[4];
    int i;

    if (letters(c, m, sizeof m) != 0 || strlen(m) != 3)
        return -1;
    for (i = 0; i < 12; i++) {
        if (memcmp(names + 3 * i, m, 3) == 0) {
            *mon = i;
            return 0;
        }
    }
    return -1;
}

/* A day name, short ("Sun") or long ("Sunday"). It is checked for being a
 * day name but not against the date: the date is what counts. */
static int wkday(struct cur *c, int long_form)
{
    static const char *const names[] = { "Sunday", "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday" };
    char d[10];
    int i;

    if (letters(c, d, sizeof d) != 0)
        return -1;
    for (i = 0; i < 7; i++) {
        if (long_form ? strcmp(d, names[i]) == 0 : strncmp(d, names[i], 3) == 0 && strlen(d) == 3)
            return 0;
    }
    return -1;
}

static int hms(struct cur *c, struct tm *tm)
{
    if (num(c, 2, 2, &tm->tm_hour) || lit(c, ":") || num(c, 2, 2, &tm->tm_min) || lit(c, ":") ||
        num(c, 2, 2, &tm->tm_sec))
        return -1;
    return 0;
}

/* Calendar check (timegm would silently normalise Feb 31 to Mar 3) and
 * conversion. year is the full year. Returns 0 and *t, or -1. */
static int to_time(struct tm *tm, int year, long offset, time_t *t)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    if (year < 1970 || year > 9999 || tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_mday < 1 ||
        tm->tm_mday > mdays[tm->tm_mon] || (tm->tm_mon == 1 && !leap && tm->tm_mday > 28) ||
        tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60)
        return -1;
    tm->tm_year = year - 1900;
    tm->tm_isdst = 0;
    *t = timegm(tm);
    if (*t == (time_t)-1)
        return -1;
    *t -= offset;
    return 0;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" and "Sunday, 06-Nov-94 08:49:37 GMT". */
static int parse_rfc1123_850(struct cur *c, time_t now, time_t *t)
{
    struct tm tm;
    const char *start = c->p;
    int year, rfc850;

    memset(&tm, 0, sizeof tm);
    while (c->p < c->e && *c->p != ',')
        c->p++;
    rfc850 = c->p - start > 3;
    c->p = start;
    if (wkday(c, rfc850) || lit(c, ",") || spaces(c) || num(c, 2, 2, &tm.tm_mday))
        return -1;
    if (!rfc850) {
        if (spaces(c) || month(c, &tm.tm_mon) || spaces(c) || num(c, 4, 4, &year))
            return -1;
    } else {
        struct tm nt;
        if (lit(c, "-") || month(c, &tm.tm_mon) || lit(c, "-") || num(c, 2, 2, &year))
            return -1;
        /* RFC 7231 7.1.1.1: a two-digit year more than 50 years ahead is in
         * the past century. */
        if (!gmtime_r(&now, &nt))
            return -1;
        year += (nt.tm_year + 1900) / 100 * 100;
        if (year > nt.tm_year + 1900 + 50)
            year -= 100;
    }
    if (spaces(c) || hms(c, &tm) || spaces(c) || (lit(c, "GMT") && lit(c, "UTC")) || !at_end(c))
        return -1;
    return to_time(&tm, year, 0, t);
}

/* "Sun Nov  6 08:49:37 1994" */
static int parse_asctime(struct cur *c, time_t *t)
{
    struct tm tm;
    int year;

    memset(&tm, 0, sizeof tm);
    if (wkday(c, 0) || spaces(c) || month(c, &tm.tm_mon) || spaces(c) ||
        num(c, 1, 2, &tm.tm_mday) || spaces(c) || hms(c, &tm) || spaces(c) ||
        num(c, 4, 4, &year) || !at_end(c))
        return -1;
    return to_time(&tm, year, 0, t);
}

/* Optional ".123456789" (ignored: Retry-After has second resolution). */
static void fraction(struct cur *c)
{
    if (c->p < c->e && *c->p == '.') {
        c->p++;
        while (digit(c))
            c->p++;
    }
}

/* "+0100" or, with colon != 0, "+01:00". Returns 0 and the offset east of
 * UTC in seconds. */
static int zone_offset(struct cur *c, int colon, long *off)
{
    int sign, hh, mm;

    if (c->p == c->e || (*c->p != '+' && *c->p != '-'))
        return -1;
    sign = *c->p++ == '-' ? -1 : 1;
    if (num(c, 2, 2, &hh) || (colon && lit(c, ":")) || num(c, 2, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    *off = sign * (hh * 3600L + mm * 60L);
    return 0;
}

/* Go's time.Time.String(): "2024-11-11 14:59:33.5 +0000 UTC m=+0.1", and RFC
 * 3339 "2024-11-11T14:59:33Z". The zone abbreviation is not trusted (Go
 * prints "+0530" for unnamed zones); the numeric offset is. */
static int parse_iso(struct cur *c, time_t *t)
{
    struct tm tm;
    int year, mon;
    long off = 0;
    char sep;

    memset(&tm, 0, sizeof tm);
    if (num(c, 4, 4, &year) || lit(c, "-") || num(c, 2, 2, &mon) || lit(c, "-") ||
        num(c, 2, 2, &tm.tm_mday) || c->p == c->e)
        return -1;
    tm.tm_mon = mon - 1;
    sep = *c->p++;
    if ((sep != ' ' && sep != 'T') || hms(c, &tm))
        return -1;
    fraction(c);
    if (sep == 'T') {
        if (lit(c, "Z") && zone_offset(c, 1, &off))
            return -1;
    } else {
        if (spaces(c) || zone_offset(c, 0, &off))
            return -1;
        if (c->p < c->e && *c->p == ' ') {     /* the abbreviation */
            c->p++;
            if (c->p == c->e)
                return -1;
            while (c->p < c->e && *c->p != ' ')
                c->p++;
        }
        if (lit(c, " m=") == 0) {              /* monotonic clock reading */
            if (c->p < c->e && (*c->p == '+' || *c->p == '-'))
                c->p++;
            if (!digit(c))
                return -1;
            while (digit(c))
                c->p++;
            fraction(c);
        }
    }
    if (!at_end(c))
        return -1;
    return to_time(&tm, year, off, t);
}

int calm_parse_retry_after(const char *value, size_t n, time_t now, double *seconds)
{
    struct cur c;
    time_t t;
    int rc;

    if (!value)
        return -1;
    c.p = value;
    c.e = value + n;
    while (c.p < c.e && (*c.p == ' ' || *c.p == '\t'))
        c.p++;
    while (c.e > c.p && (c.e[-1] == ' ' || c.e[-1] == '\t' || c.e[-1] == '\r' || c.e[-1] == '\n'))
        c.e--;
    if (c.p == c.e)
        return -1;

    if (digit(&c)) {
        const char *q = c.p;
        double v = 0;
        while (q < c.e && *q >= '0' && *q <= '9' && v <= RA_MAX_DELTA)
            v = v * 10 + (*q++ - '0');
        if (q == c.e) {
            if (v > RA_MAX_DELTA)
                return -1;
            *seconds = v;
            return 0;
        }
        /* digits then more: only a date starting with the year qualifies */
        rc = parse_iso(&c, &t);
    } else if (memchr(c.p, ',', (size_t)(c.e - c.p))) {
        rc = parse_rfc1123_850(&c, now, &t);
    } else {
        rc = parse_asctime(&c, &t);
    }
    if (rc != 0)
        return -1;
    *seconds = t > now ? (double)(t - now) : 0.0;
    return 0;
}
