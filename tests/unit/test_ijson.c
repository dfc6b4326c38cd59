/* test_ijson.c: ijson.c, the I-JSON check before every decode: RFC 8259
 * syntax (accepts what it must, refuses what it must), the RFC 7493 rules
 * (UTF-8, surrogates, noncharacters, duplicate names, number range), the
 * nesting limit, and the byte offsets in the faults. */
#include <stdlib.h>
#include <string.h>

#include "calm.h"
#include "check.h"

#define Z10 "0000000000"
#define ZEROS292 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 \
    Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 Z10 "00"

typedef struct vec {
    const char *text;
    const char *kind;   /* NULL: accepted */
    size_t at;          /* 0: do not check */
    const char *what;   /* substring of the fault's text, or NULL */
} vec;

static const vec vecs[] = {
    /* accepted */
    { "{}", NULL, 0, NULL }, { "[]", NULL, 0, NULL }, { " [ ] ", NULL, 0, NULL },
    { "0", NULL, 0, NULL }, { "-0.0e-0", NULL, 0, NULL }, { "\"\"", NULL, 0, NULL },
    { "true", NULL, 0, NULL }, { "null", NULL, 0, NULL },
    { "{\"a\":1,\"b\":[1,2,{\"a\":2}],\"c\":{\"a\":3}}", NULL, 0, NULL },
    { "{\"a\":{},\"b\":{}}", NULL, 0, NULL },
    { "[{\"a\":1},{\"a\":1}]", NULL, 0, NULL },
    { "{\"x\":{\"a\":1,\"b\":2},\"a\":3}", NULL, 0, NULL },
    { "{\"A\":1,\"a\":2,\"a \":3,\"ab\":4}", NULL, 0, NULL },
    { "\"\\u00e9\\ud83d\\ude00 \xc3\xa9 \xf0\x9f\x98\x80 \\\"\\\\\\/\\b\\f\\n\\r\\t\"", NULL, 0, NULL },
    { "1.7976931348623157e308", NULL, 0, NULL }, { "-1.7976931348623157e308", NULL, 0, NULL },
    { "17976931348623157" ZEROS292, NULL, 0, NULL },   /* DBL_MAX written out */
    { "1e-400", NULL, 0, NULL }, { "0e99999999999", NULL, 0, NULL }, { "0.000e400", NULL, 0, NULL },
    { "1e307", NULL, 0, NULL }, { "12345678901234567890123", NULL, 0, NULL },
    { "\"\xef\xbf\xbd\"", NULL, 0, NULL },   /* U+FFFD is a character */
    /* syntax and truncation */
    { "", "truncated", 1, NULL }, { "{", "truncated", 2, NULL }, { "{\"a\"", "truncated", 0, NULL },
    { "{\"a\":1", "truncated", 0, NULL }, { "[1,", "truncated", 0, NULL }, { "\"ab", "truncated", 4, NULL },
    { "tru", "truncated", 0, NULL }, { "\"\\u12", "truncated", 0, NULL }, { "\"\xc3", "truncated", 0, NULL },
    { "{\"a\":1,}", "syntax", 8, "member name" }, { "[1,]", "syntax", 4, "expected a value" },
    { "{\"a\" 1}", "syntax", 6, "':'" }, { "[1 2]", "syntax", 4, "','" }, { "{} x", "syntax", 4, "after" },
    { "[01]", "syntax", 0, NULL }, { "[1.]", "syntax", 4, "number" }, { "[.5]", "syntax", 2, NULL },
    { "[+1]", "syntax", 2, NULL }, { "[1e]", "syntax", 0, NULL }, { "[NaN]", "syntax", 2, NULL },
    { "[Infinity]", "syntax", 2, NULL }, { "[0x10]", "syntax", 3, NULL }, { "[nul]", "syntax", 0, NULL },
    { "{a:1}", "syntax", 2, NULL }, { "[\"\\x\"]", "syntax", 0, "escape" }, { "[\"a\tb\"]", "syntax", 4, "control" },
    { "[\"\\u12G4\"]", "syntax", 0, "\\u" }, { "// c\n{}", "syntax", 1, NULL }, { "[1]]", "syntax", 4, NULL },
    /* I-JSON */
    { "{\"s\":\"\xff\xfe\"}", "utf8", 7, "invalid UTF-8" },
    { "{\"s\":\"ab\xc0\xaf\"}", "utf8", 9, NULL },              /* overlong '/' */
    { "{\"s\":\"\xed\xa0\x80\"}", "utf8", 7, NULL },            /* raw surrogate (CESU) */
    { "{\"s\":\"\xf4\x90\x80\x80\"}", "utf8", 7, NULL },        /* above U+10FFFF */
    { "{\"s\":\"\xe2\x82\"x}", "utf8", 7, NULL },               /* cut sequence */
    { "[\xff]", "utf8", 2, NULL }, { "{\"\xfe\":1}", "utf8", 3, NULL },
    { "[\"\\ud800\"]", "surrogate", 3, "surrogate" }, { "[\"\\udc00\\ud800\"]", "surrogate", 3, NULL },
    { "[\"\\ud800\\u0041\"]", "surrogate", 3, NULL },
    { "[\"\\uffff\"]", "noncharacter", 3, NULL }, { "[\"\\ufdd0\"]", "noncharacter", 3, NULL },
    { "[\"\xef\xbf\xbe\"]", "noncharacter", 3, NULL }, { "[\"\\ud83f\\udffe\"]", "noncharacter", 3, NULL },
    { "{\"clientsecret\":\"a\",\"clientsecret\":\"b\"}", "duplicate", 21, "duplicate member 'clientsecret'" },
    { "{\"a\":1,\"\\u0061\":2}", "duplicate", 8, "'a'" },
    { "{\"x\":{\"a\":1,\"b\":{},\"a\":2}}", "duplicate", 20, "'a'" },
    { "{\"b\":1,\"a\":1,\"b\":2,\"a\":3}", "duplicate", 14, "'b'" },
    { "{\"a'b\\n\":1,\"a'b\\n\":2}", "duplicate", 0, "'a?b?'" },
    { "[1e400]", "number", 2, "out of range" }, { "[-1e400]", "number", 2, NULL },
    { "[1.8e308]", "number", 2, NULL }, { "[0.00018e312]", "number", 2, NULL },
    { "[1e99999999999999999999]", "number", 2, NULL },
    { "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671"
      "505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792",
      "number", 1, NULL },   /* 1.797...58079e308: halfway above DBL_MAX, rounds to inf */
};

static void run_vectors(void)
{
    size_t i;
    for (i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        const vec *v = &vecs[i];
        calm_ijson_fault f;
        char what[160];
        int rc = calm_ijson_check(v->text, strlen(v->text), 1000, &f);
        snprintf(what, sizeof what, "vector %zu (%s%s)", i, v->kind ? v->kind : "accepted",
                 rc == -1 ? "" : rc == 0 ? "; got ok" : "; got memory");
        if (!v->kind) {
            if (rc != 0) printf("# vector %zu: %s: %s at %zu\n", i, f.kind, f.what, f.at);
            CHECK(rc == 0, what);
            continue;
        }
        if (rc == -1 && (strcmp(f.kind, v->kind) != 0 || (v->at && f.at != v->at) ||
                         (v->what && !strstr(f.what, v->what))))
            printf("# vector %zu: got %s at %zu: %s\n", i, f.kind, f.at, f.what);
        CHECK(rc == -1 && strcmp(f.kind, v->kind) == 0 && (!v->at || f.at == v->at) &&
              (!v->what || strstr(f.what, v->what)), what);
    }
}

/* Nesting: max_depth levels pass, one more is a "depth" fault at the
 * bracket that opened it; 100 000 levels take no stack. */
static void nesting(void)
{
    size_t n = 100000, i;
    char *s = malloc(2 * n + 1);
    calm_ijson_fault f;
    for (i = 0; i < n; i++) { s[i] = '['; s[n + i] = ']'; }
    CHECK(calm_ijson_check(s + n - 1000, 2000, 1000, &f) == 0, "1000 levels pass at max_depth 1000");
    s[n + 1001] = 0;
    CHECK(calm_ijson_check(s + n - 1001, 2002, 1000, &f) == -1 && strcmp(f.kind, "depth") == 0 &&
          f.at == 1001 && strstr(f.what, "deeper than 1000"), "1001 levels: depth fault at byte 1001");
    for (i = 0; i < n; i++) s[n + i] = ']';
    CHECK(calm_ijson_check(s, 2 * n, 1000, &f) == -1 && strcmp(f.kind, "depth") == 0,
          "100000 levels: depth fault");
    for (i = 0; i < n; i++) s[i] = (i % 2) ? '[' : '{';
    CHECK(calm_ijson_check(s, n, 1000, &f) == -1 && strcmp(f.kind, "syntax") == 0 && f.at == 2,
          "'{[' : an object needs a member name first");
    free(s);
}

/* Many members: duplicate detection stays exact across a large object and
 * after nested objects closed (their names are not the outer object's). */
static void many_members(void)
{
    calm_buf b;
    calm_ijson_fault f;
    int i;
    char item[64];
    calm_buf_init(&b);
    calm_buf_puts(&b, "{");
    for (i = 0; i < 20000; i++) {
        snprintf(item, sizeof item, "%s\"k%d\":{\"k%d\":1}", i ? "," : "", i, i + 1);
        calm_buf_puts(&b, item);
    }
    calm_buf_puts(&b, "}");
    CHECK(calm_ijson_check(b.data, b.len, 1000, &f) == 0, "20000 distinct members with nested objects pass");
    b.data[b.len - 1] = ',';
    calm_buf_puts(&b, "\"k19999\":0}");
    CHECK(calm_ijson_check(b.data, b.len, 1000, &f) == -1 && strcmp(f.kind, "duplicate") == 0 &&
          strstr(f.what, "'k19999'"), "the last of 20001 members duplicates one: found");
    calm_buf_free(&b);
}

static void embedded_nul(void)
{
    calm_ijson_fault f;
    CHECK(calm_ijson_check("[\"a\0b\"]", 7, 1000, &f) == -1 && strcmp(f.kind, "syntax") == 0 && f.at == 4,
          "a raw NUL in a string is a control character");
    CHECK(calm_ijson_check("{\"a\\u0000\":1,\"a\":2}", 19, 1000, &f) == 0,
          "names differing by an escaped NUL are distinct");
    CHECK(calm_ijson_check("[1] \0", 5, 1000, &f) == -1 && f.at == 5, "a NUL after the value is trailing data");
}

int main(void)
{
    check_suite = "unit/ijson";
    run_vectors();
    nesting();
    many_members();
    embedded_nul();
    return CHECK_DONE();
}
