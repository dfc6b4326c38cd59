/* ijson_scan.c: the tokens of the I-JSON check (ijson.c has the structure):
 * strings (strict UTF-8, escapes, surrogate pairs, no noncharacters; member
 * names copied unescaped for the duplicate check), numbers (refused beyond
 * the range of a double without converting them), true/false/null, and the
 * fault record every check failure fills in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ijson_internal.h"

int calm_ijson_fail(parser *p, const char *kind, size_t at, const char *what)
{
    p->f->kind = kind;
    p->f->at = at + 1;
    snprintf(p->f->what, sizeof p->f->what, "%s", what);
    return -1;
}

/* A fault at the end of the input is truncation, anything else `what`. */
int calm_ijson_unexpected(parser *p, const char *what)
{
    if (p->pos >= p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
    return calm_ijson_fail(p, "syntax", p->pos, what);
}

void calm_ijson_skip_ws(parser *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                             p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int is_nonchar(unsigned long cp)
{
    return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* Length of the UTF-8 sequence at s[0..n), strictly (no overlong forms, no
 * surrogates, nothing above U+10FFFF); 0 if invalid. Stores the code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned long *cp)
{
    size_t len, i;
    unsigned long c = s[0], min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { len = 2; c &= 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; c &= 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; c &= 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

static int hex4(parser *p, size_t at, unsigned long *cp)
{
    size_t i;
    unsigned long v = 0;
    for (i = 0; i < 4; i++) {
        int c;
        if (at + i >= p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
        c = p->s[at + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
        else return calm_ijson_fail(p, "syntax", at + i, "invalid \\u escape");
    }
    *cp = v;
    return 0;
}

/* Appends code point cp as UTF-8 to the member-name buffer. */
static void put_utf8(parser *p, unsigned long cp)
{
    unsigned char u[4];
    size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4, i;
    static const unsigned char lead[5] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    for (i = k - 1; i > 0; i--, cp >>= 6) u[i] = (unsigned char)(0x80 | (cp & 0x3F));
    u[0] = (unsigned char)(lead[k] | cp);
    if (calm_buf_append(&p->names, u, k)) p->oom = 1;
}

/* \uXXXX at p->pos (just after the backslash and 'u'), surrogate pairs joined. */
static int unicode_escape(parser *p, int keep)
{
    size_t at = p->pos - 2;
    unsigned long cp, lo;
    if (hex4(p, p->pos, &cp)) return -1;
    p->pos += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return calm_ijson_fail(p, "surrogate", at, "unpaired surrogate escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->pos + 1 >= p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
        if (p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return calm_ijson_fail(p, "surrogate", at, "unpaired surrogate escape");
        if (hex4(p, p->pos + 2, &lo)) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return calm_ijson_fail(p, "surrogate", at, "unpaired surrogate escape");
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (is_nonchar(cp)) return calm_ijson_fail(p, "noncharacter", at, "Unicode noncharacter");
    if (keep) put_utf8(p, cp);
    return 0;
}

static int escape(parser *p, int keep)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;
    int c;
    if (p->pos >= p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
    c = p->s[p->pos++];
    if (c == 'u') return unicode_escape(p, keep);
    if (c == 0 || !(hit = strchr(from, c)))
        return calm_ijson_fail(p, "syntax", p->pos - 1, "invalid escape in a string");
    if (keep && calm_buf_putc(&p->names, to[hit - from])) p->oom = 1;
    return 0;
}

/* The string at p->pos (its opening quote); keep != 0 copies its
 * unescaped bytes to p->names (a member name). */
int calm_ijson_string(parser *p, int keep)
{
    p->pos++;
    for (;;) {
        unsigned long cp;
        size_t len;
        unsigned char c;
        if (p->pos >= p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
        c = p->s[p->pos];
        if (c == '"') { p->pos++; return p->oom ? -2 : 0; }
        if (c == '\\') { p->pos++; if (escape(p, keep)) return -1; continue; }
        if (c < 0x20) return calm_ijson_fail(p, "syntax", p->pos, "unescaped control character in a string");
        len = utf8_seq(p->s + p->pos, p->n - p->pos, &cp);
        if (!len) {
            /* a sequence cut by the end of input is a truncation */
            if (c >= 0xC2 && c <= 0xF4 && p->n - p->pos < 4 && p->n - p->pos > 0) {
                size_t i;
                for (i = p->pos + 1; i < p->n && (p->s[i] & 0xC0) == 0x80; i++) {}
                if (i == p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
            }
            return calm_ijson_fail(p, "utf8", p->pos, "invalid UTF-8");
        }
        if (is_nonchar(cp)) return calm_ijson_fail(p, "noncharacter", p->pos, "Unicode noncharacter");
        if (keep && calm_buf_append(&p->names, p->s + p->pos, len)) p->oom = 1;
        p->pos += len;
    }
}

static size_t digits(parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    return p->pos - start;
}

/* Whether the number with significant digits sig[0..nsig) (sig[0] != '0',
 * '.' skipped) and decimal exponent e10 of its first digit overflows a
 * double. Only e10 == 308 needs strtod; the text given to it has no '.',
 * so the locale's decimal point does not matter. */
static int overflows(parser *p, const unsigned char *sig, size_t end, long e10)
{
    char *t, *o;
    double v;
    if (e10 != 308) return e10 > 308;
    if (!(t = malloc(end + 32))) { p->oom = 1; return 0; }
    o = t;
    {
        const unsigned char *q;
        long nsig = 0;
        for (q = sig; q < p->s + end; q++) {
            if (*q == 'e' || *q == 'E') break;
            if (*q != '.') { *o++ = (char)*q; nsig++; }
        }
        snprintf(o, 32, "e%ld", e10 + 1 - nsig);
    }
    v = strtod(t, NULL);
    free(t);
    return v > 1.7976931348623157e308;
}

/* Scans "e123" / "E-4": saturated at +-100000 (beyond any double). */
static long exponent(parser *p, size_t *nd)
{
    long e = 0;
    int neg = 0;
    size_t start;
    if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) neg = p->s[p->pos++] == '-';
    start = p->pos;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        if (e < 100000) e = e * 10 + (p->s[p->pos] - '0');
        p->pos++;
    }
    *nd = p->pos - start;
    return neg ? -e : e;
}

static int number(parser *p)
{
    size_t start = p->pos, ni, nf = 0, ne, i;
    const unsigned char *sig = NULL;
    long e10 = 0;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos < p->n && p->s[p->pos] == '0') { p->pos++; ni = 1; }
    else if (!(ni = digits(p))) return calm_ijson_unexpected(p, "invalid number");
    if (!(ni == 1 && p->s[p->pos - 1] == '0')) { sig = p->s + p->pos - ni; e10 = (long)ni - 1; }
    if (p->pos < p->n && p->s[p->pos] == '.') {
        size_t f0 = ++p->pos;
        if (!(nf = digits(p))) return calm_ijson_unexpected(p, "invalid number");
        for (i = f0; !sig && i < p->pos; i++)
            if (p->s[i] != '0') { sig = p->s + i; e10 = -(long)(i - f0) - 1; }
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        long e;
        p->pos++;
        e = exponent(p, &ne);
        if (!ne) return calm_ijson_unexpected(p, "invalid number");
        e10 += e;
    }
    if (sig && overflows(p, sig, p->pos, e10))
        return calm_ijson_fail(p, "number", start, "number out of range (beyond +-1.8e308)");
    return p->oom ? -2 : 0;
}

static int literal(parser *p)
{
    static const char *const words[] = { "true", "false", "null" };
    size_t i;
    for (i = 0; i < 3; i++) {
        size_t k = strlen(words[i]);
        if (p->s[p->pos] != (unsigned char)words[i][0]) continue;
        if (p->n - p->pos < k) {
            if (memcmp(p->s + p->pos, words[i], p->n - p->pos) == 0)
                return calm_ijson_fail(p, "truncated", p->n, "truncated");
            break;
        }
        if (memcmp(p->s + p->pos, words[i], k) != 0) break;
        p->pos += k;
        return 0;
    }
    return calm_ijson_fail(p, "syntax", p->pos, "expected a value");
}

/* A string, number or literal at p->pos (the caller has skipped white space
 * and seen a byte that opens no container): 0, or negative on a fault. */
int calm_ijson_scalar(parser *p)
{
    unsigned char c = p->s[p->pos];
    unsigned long cp;
    if (c == '"') return calm_ijson_string(p, 0);
    if (c == '-' || (c >= '0' && c <= '9')) return number(p);
    if (c == 't' || c == 'f' || c == 'n') return literal(p);
    if (c >= 0x80 && !utf8_seq(p->s + p->pos, p->n - p->pos, &cp))
        return calm_ijson_fail(p, "utf8", p->pos, "invalid UTF-8");
    return calm_ijson_fail(p, "syntax", p->pos, "expected a value");
}
