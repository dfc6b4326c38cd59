/* redact.c: the secret registry and calm_redact(), the filter every byte bound
 * for stderr passes through (log lines, HTTP traces, remote error text).
 *
 * Redaction works on a mask: each rule marks the byte ranges it wants hidden
 * in a scratch array as long as the input, then the output is the input with
 * every maximal marked run replaced by "***". So rules never see each other's
 * output, overlapping or adjacent secrets merge by construction, "longest
 * match first" holds trivially (the union is hidden), and rule order does not
 * matter. Every rule is a forward scan: the cost is O(n * patterns) for an
 * n-byte input, which keeps an 8 MiB trace body affordable.
 *
 * Rules (documented in docs/lua-api.md, "Redaction"; 2-6 in redact_rules.c):
 *   1. registered values, raw and in the encodings they travel in;
 *   2. values of fields whose name looks secret, JSON ("k":"v", also JSON
 *      escaped inside a JSON string), form/query (k=v) and Lua (k = "v");
 *   3. header lines Authorization/Cookie/Set-Cookie/...-api-key to the end of
 *      the line, keeping the scheme word;
 *   4. "Bearer <token>", "Basic <base64>", bare JWTs (eyJ...x.y.z);
 *   5. URL userinfo (scheme://user:pass@host);
 *   6. PEM private key blocks, BEGIN to END (to the end if END is missing). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"
#include "redact_internal.h"

/* ---- the registry -------------------------------------------------------- */

/* One searchable form of a registered value. `period` is the smallest period
 * of the pattern: it lets the scan step over overlapping repeats in linear
 * time (see mark_pattern). */
struct pattern {
    char *p;
    size_t n;
    size_t period;
    int raw;        /* the value as registered (what calm_redact_count counts) */
    unsigned scope; /* registered in this scope (0: for the whole run) */
};

static struct pattern *pats;
static size_t npats, cappats;
static size_t nvalues;
static unsigned cur_scope, last_scope;   /* calm_redact_set_scope, calm_redact_scope_new */

/* An index of the patterns by their first 4 bytes (every pattern is at least
 * CALM_REDACT_MIN long): a hash table of chains, so registering a value and
 * redacting a line cost the same with 100 000 registered patterns (a fleet of
 * 10 000 tenants) as with ten. calm_redact visits only the chains whose key
 * occurs in its input, each at most once per call (`seen` holds the call's
 * stamp). */
#define NONE UINT32_MAX
static uint32_t *heads, *chain, *seen;   /* heads/seen: nbuckets; chain: cappats */
static size_t nbuckets;
static uint32_t stamp;
static unsigned bucket_bits;

static size_t bucket_of(const char *p)
{
    uint32_t k;
    memcpy(&k, p, 4);
    return (size_t)((k * 2654435761u) >> (32 - bucket_bits));
}

static void index_pattern(size_t i)
{
    size_t b = bucket_of(pats[i].p);
    chain[i] = heads[b];
    heads[b] = (uint32_t)i;
}

/* Room for `cap` patterns in the index (buckets: a power of two >= 2 cap). */
static int grow_index(size_t cap)
{
    uint32_t *nc = realloc(chain, cap * sizeof *nc), *nh, *ns;
    unsigned bits = 6;
    size_t i, nb;
    if (!nc)
        return -1;
    chain = nc;
    while (((size_t)1 << bits) < 2 * cap)
        bits++;
    nb = (size_t)1 << bits;
    if (nb == nbuckets)
        return 0;
    nh = malloc(nb * sizeof *nh);
    ns = calloc(nb, sizeof *ns);
    if (!nh || !ns) {
        free(nh);
        free(ns);
        return -1;
    }
    free(heads);
    free(seen);
    heads = nh;
    seen = ns;
    nbuckets = nb;
    bucket_bits = bits;
    stamp = 0;
    for (i = 0; i < nb; i++)
        heads[i] = NONE;
    for (i = 0; i < npats; i++)
        index_pattern(i);
    return 0;
}

/* Smallest period of p (KMP failure function). Returns n when the
 * temporary table cannot be allocated: still correct, merely slower on
 * self-overlapping values. */
static size_t min_period(const char *p, size_t n)
{
    size_t *fail, i, k = 0, per;

    fail = malloc(n * sizeof *fail);
    if (!fail)
        return n;
    fail[0] = 0;
    for (i = 1; i < n; i++) {
        while (k > 0 && p[i] != p[k])
            k = fail[k - 1];
        if (p[i] == p[k])
            k++;
        fail[i] = k;
    }
    per = n - fail[n - 1];
    free(fail);
    return per;
}

/* Takes ownership of b's memory (a registered form) unless the same bytes
 * are already registered. Returns 0 or -1 on memory. */
static int add_pattern(calm_buf *b, int raw)
{
    uint32_t i;

    if (b->len < 4 || npats >= NONE - 1) {   /* cannot happen: values are >= CALM_REDACT_MIN */
        int rc = b->len < 4 ? 0 : -1;
        calm_buf_free(b);
        return rc;
    }
    /* The same bytes already registered for the whole run or in this scope:
     * nothing to add (a copy in another scope does not outlive that one). */
    for (i = nbuckets ? heads[bucket_of(b->data)] : NONE; i != NONE; i = chain[i]) {
        if (pats[i].n == b->len && (pats[i].scope == 0 || pats[i].scope == cur_scope) &&
            memcmp(pats[i].p, b->data, b->len) == 0) {
            if (raw && !pats[i].raw) {  /* an earlier value's encoded form */
                pats[i].raw = 1;
                nvalues++;
            }
            calm_buf_free(b);
            return 0;
        }
    }
    if (npats == cappats) {
        size_t ncap = cappats ? cappats * 2 : 16;
        struct pattern *np = realloc(pats, ncap * sizeof *np);  /* holds no secret bytes */
        if (np)
            pats = np;
        if (!np || grow_index(ncap) != 0) {
            calm_buf_free(b);
            return -1;
        }
        cappats = ncap;
    }
    pats[npats].p = b->data;
    pats[npats].n = b->len;
    pats[npats].period = min_period(b->data, b->len);
    pats[npats].raw = raw;
    pats[npats].scope = cur_scope;
    index_pattern(npats);
    npats++;
    if (raw)
        nvalues++;
    calm_buf_init(b);   /* the registry owns the bytes now */
    return 0;
}

/* Registers s (a copy) and the forms it may be printed in (redact_forms.c)
 * in the current scope. Returns 0 (also for a value too short to register)
 * or -1 on memory. */
int calm_redact_add(const char *s, size_t n)
{
    calm_buf b;
    int form;

    if (!s || n < CALM_REDACT_MIN)
        return 0;
    calm_buf_init(&b);
    if (calm_buf_append(&b, s, n) != 0 || add_pattern(&b, 1) != 0)
        goto oom;
    for (form = 0; form < CALM_REDACT_FORMS; form++)
        if (calm_redact_form(form, s, n, &b) != 0 || add_pattern(&b, 0) != 0)
            goto oom;
    return 0;
oom:
    calm_buf_free(&b);
    return -1;
}

unsigned calm_redact_scope_new(void)
{
    return ++last_scope ? last_scope : ++last_scope;
}

void calm_redact_set_scope(unsigned scope)
{
    cur_scope = scope;
}

/* Wipes and frees the values of `scope` (every form) and re-indexes the
 * rest: O(registered patterns), which stay few when a fleet forgets each
 * tenant's secrets as the tenant finishes. Returns the values forgotten. */
size_t calm_redact_forget(unsigned scope)
{
    size_t i, kept = 0, gone = 0;

    if (scope == 0)
        return 0;
    for (i = 0; i < npats; i++) {
        if (pats[i].scope != scope) {
            pats[kept++] = pats[i];
            continue;
        }
        if (pats[i].raw)
            gone++;
        calm_wipe(pats[i].p, pats[i].n);
        free(pats[i].p);
    }
    npats = kept;
    nvalues -= gone;
    for (i = 0; i < nbuckets; i++)
        heads[i] = NONE;
    for (i = 0; i < npats; i++)
        index_pattern(i);
    return gone;
}

size_t calm_redact_count(void)
{
    return nvalues;
}

void calm_redact_clear(void)
{
    size_t i;

    for (i = 0; i < npats; i++) {
        calm_wipe(pats[i].p, pats[i].n);
        free(pats[i].p);
    }
    free(pats);
    free(heads);
    free(chain);
    free(seen);
    pats = NULL;
    heads = chain = seen = NULL;
    nbuckets = 0;
    npats = cappats = nvalues = 0;
}

/* ---- rule 1: registered values (rules 2-6 are in redact_rules.c) ---------- */

/* Every occurrence of a pattern, overlapping ones included. After a hit at s
 * the next occurrence cannot start before s + period (a smaller shift would
 * be a smaller period), and a run of repeats is extended `period` bytes at a
 * time instead of re-searching, so "aaaa..." against a long 'a' value stays
 * linear. */
static void mark_pattern(const char *in, size_t n, unsigned char *m, const struct pattern *pt)
{
    size_t pos = 0, len = pt->n, per = pt->period;

    while (len <= n - pos) {
        const char *hit = memmem(in + pos, n - pos, pt->p, len);
        size_t start, end;
        if (!hit)
            break;
        start = (size_t)(hit - in);
        end = start + len;
        while (per <= n - end && memcmp(in + end, pt->p + len - per, per) == 0)
            end += per;
        calm_redact_mark(m, start, end);
        pos = end - len + per;
    }
}

/* ---- calm_redact ----------------------------------------------------------- */

/* Appends in[0..n) to out with the marked runs replaced by "***". */
/* Every registered pattern: only the chains whose 4-byte key occurs in the
 * input are scanned, each once. */
static void mark_registered(const char *in, size_t n, unsigned char *m)
{
    size_t i;

    if (!npats || n < 4)
        return;
    if (++stamp == 0) {   /* wrapped: forget the old stamps */
        memset(seen, 0, nbuckets * sizeof *seen);
        stamp = 1;
    }
    for (i = 0; i + 4 <= n; i++) {
        size_t b = bucket_of(in + i);
        uint32_t k = heads[b];
        if (k == NONE || seen[b] == stamp)
            continue;
        seen[b] = stamp;
        for (; k != NONE; k = chain[k])
            mark_pattern(in, n, m, &pats[k]);
    }
}

static int emit(const char *in, size_t n, const unsigned char *m, calm_buf *out)
{
    size_t i = 0;

    while (i < n) {
        const unsigned char *mk = memchr(m + i, 1, n - i);
        size_t s = mk ? (size_t)(mk - m) : n;
        if (s > i && calm_buf_append(out, in + i, s - i) != 0)
            return -1;
        if (s == n)
            break;
        mk = memchr(m + s, 0, n - s);
        i = mk ? (size_t)(mk - m) : n;
        if (calm_buf_append(out, "***", 3) != 0)
            return -1;
    }
    return 0;
}

int calm_redact(const char *in, size_t n, calm_buf *out)
{
    unsigned char small[1024], *m = small;
    int rc;

    if (n == 0)
        return calm_buf_append(out, "", 0);
    /* Log lines are short: keep their mask on the stack. */
    if (n > sizeof small && !(m = malloc(n)))
        return -1;
    memset(m, 0, n);
    mark_registered(in, n, m);
    calm_redact_mark_words(in, n, m);
    calm_redact_mark_userinfo(in, n, m);
    calm_redact_mark_pem(in, n, m);
    rc = emit(in, n, m, out);
    if (m != small)
        free(m);    /* the mask holds positions, not secret bytes */
    return rc;
}
