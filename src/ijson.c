/* ijson.c: the one check every JSON text calmbind reads passes before
 * lua-cjson decodes it: RFC 8259 syntax plus the I-JSON rules of RFC 7493
 * that lua-cjson 2.1.0 cannot see:
 *   - UTF-8 only, no surrogates and no noncharacters (raw or \u-escaped);
 *   - no duplicate member names in one object (compared after unescaping);
 *   - no number beyond the range of an IEEE 754 double (1e400 would be inf);
 * and a nesting limit, so a hostile body is refused by name, not by a
 * stack or memory failure. One pass, no recursion; member names are kept
 * per open object and compared when the object closes. Here the structure
 * (objects, arrays, member names); the tokens are in ijson_scan.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ijson_internal.h"

/* qsort has no context argument: the names' bytes ride in a static for
 * the duration of one sort (the core runs on one thread). */
static const char *sort_base;

static int cmp_names(const void *a, const void *b)
{
    const name *x = a, *y = b;
    int c = memcmp(sort_base + x->off, sort_base + y->off, x->len < y->len ? x->len : y->len);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Object closing: its names are keys[first..nkeys); two equal ones are a
 * fault at the later one (the earliest such in the text). */
static int check_members(parser *p, const frame *fr)
{
    name *k = p->keys + fr->first_key;
    size_t n = p->nkeys - fr->first_key, i, dup = 0, best = (size_t)-1;
    if (n < 2) return 0;
    sort_base = p->names.data;
    qsort(k, n, sizeof *k, cmp_names);
    for (i = 1; i < n; i++)
        if (k[i].len == k[i - 1].len && memcmp(p->names.data + k[i].off, p->names.data + k[i - 1].off, k[i].len) == 0
            && k[i].at < best) { best = k[i].at; dup = i; }
    if (best == (size_t)-1) return 0;
    {
        char shown[48];
        size_t j, o = 0;
        const char *s = p->names.data + k[dup].off;
        for (j = 0; j < k[dup].len && o < 40; j++)
            shown[o++] = (s[j] >= 0x20 && s[j] < 0x7f && s[j] != '\'') ? s[j] : '?';
        shown[o] = 0;
        snprintf(p->f->what, sizeof p->f->what, "duplicate member '%s%s'", shown, k[dup].len > 40 ? "..." : "");
        p->f->kind = "duplicate";
        p->f->at = best;
    }
    return -1;
}

/* Records the member name at p->pos for the innermost object. */
static int member_name(parser *p)
{
    name nm;
    if (p->pos >= p->n || p->s[p->pos] != '"')
        return calm_ijson_unexpected(p, "expected a member name (a string)");
    nm.off = p->names.len;
    nm.at = p->pos + 1;
    if (calm_ijson_string(p, 1)) return p->oom ? -2 : -1;
    nm.len = p->names.len - nm.off;
    if (p->nkeys == p->capkeys) {
        size_t cap = p->capkeys ? 2 * p->capkeys : 16;
        name *more = realloc(p->keys, cap * sizeof *more);
        if (!more) return -2;
        p->keys = more;
        p->capkeys = cap;
    }
    p->keys[p->nkeys++] = nm;
    calm_ijson_skip_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != ':')
        return calm_ijson_unexpected(p, "expected ':' after a member name");
    p->pos++;
    return 0;
}

/* Opens '{' or '[' at p->pos. Returns 0 when it closed at once (empty),
 * 1 when a value must follow (an object's first member name is read). */
static int open_container(parser *p, char type)
{
    frame *fr;
    char close = type == '{' ? '}' : ']';
    if (p->depth >= p->max_depth) {
        char what[64];
        snprintf(what, sizeof what, "nested deeper than %d levels", p->max_depth);
        return calm_ijson_fail(p, "depth", p->pos, what);
    }
    fr = &p->stack[p->depth++];
    fr->type = type;
    fr->first_key = p->nkeys;
    fr->names_len = p->names.len;
    p->pos++;
    calm_ijson_skip_ws(p);
    if (p->pos < p->n && (char)p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    if (type == '{') {
        int rc = member_name(p);
        if (rc) return rc;
    }
    return 1;
}

/* One value at p->pos: 0 when it is complete, 1 when it opened a
 * container whose first element must follow; negative on a fault. */
static int value(parser *p)
{
    unsigned char c;
    calm_ijson_skip_ws(p);
    if (p->pos >= p->n) return calm_ijson_fail(p, "truncated", p->n, "truncated");
    c = p->s[p->pos];
    if (c == '{' || c == '[') return open_container(p, (char)c);
    return calm_ijson_scalar(p);
}

/* After a value inside a container: ',' and the next member name (1: a
 * value must follow), or the closing bracket (0: the container is a
 * complete value). */
static int after_value(parser *p)
{
    frame *fr = &p->stack[p->depth - 1];
    char close = fr->type == '{' ? '}' : ']';
    calm_ijson_skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ',') {
        int rc;
        p->pos++;
        if (fr->type != '{') return 1;
        calm_ijson_skip_ws(p);
        return (rc = member_name(p)) != 0 ? rc : 1;
    }
    if (p->pos < p->n && (char)p->s[p->pos] == close) {
        p->pos++;
        if (fr->type == '{' && check_members(p, fr)) return -1;
        p->nkeys = fr->first_key;
        p->names.len = fr->names_len;
        p->depth--;
        return 0;
    }
    return calm_ijson_unexpected(p, fr->type == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static int run(parser *p)
{
    int rc = value(p);
    while (rc >= 0) {
        if (rc == 1) rc = value(p);
        else if (p->depth > 0) rc = after_value(p);
        else break;
    }
    if (rc < 0) return rc;
    calm_ijson_skip_ws(p);
    if (p->pos < p->n) return calm_ijson_fail(p, "syntax", p->pos, "unexpected data after the JSON value");
    return 0;
}

int calm_ijson_check(const char *s, size_t n, int max_depth, calm_ijson_fault *f)
{
    parser p;
    int rc;
    memset(&p, 0, sizeof p);
    memset(f, 0, sizeof *f);
    p.s = (const unsigned char *)s;
    p.n = n;
    p.f = f;
    p.max_depth = max_depth > 0 ? max_depth : 1;
    calm_buf_init(&p.names);
    if (!(p.stack = malloc((size_t)p.max_depth * sizeof *p.stack))) return -2;
    rc = run(&p);
    if (p.oom) rc = -2;
    free(p.stack);
    free(p.keys);
    calm_buf_free(&p.names);
    return rc;
}
