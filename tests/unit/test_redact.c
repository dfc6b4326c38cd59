/* test_redact.c: calm_redact and the secret registry. Each row is an input
 * and the exact text the logger may print for it. */
#include <stdlib.h>
#include <time.h>

#include "calm.h"
#include "check.h"

/* The redaction of s as a C string (the previous result is freed). */
static const char *red(const char *s)
{
    static calm_buf out;

    calm_buf_free(&out);
    if (calm_redact(s, strlen(s), &out) != 0)
        return "(out of memory)";
    return out.data;
}

static void add(const char *s)
{
    CHECK(calm_redact_add(s, strlen(s)) == 0, "calm_redact_add succeeds");
}

static void registry(void)
{
    calm_redact_clear();
    CHECK(calm_redact_count() == 0, "empty after clear");
    add("abc");
    CHECK(calm_redact_count() == 0, "values shorter than CALM_REDACT_MIN are ignored");
    CHECK_STR(red("abc"), "abc", "short value still printed");
    add("S3cr3tValue!");
    add("S3cr3tValue!");
    CHECK(calm_redact_count() == 1, "a value registered twice counts once");
    CHECK_STR(red("x S3cr3tValue! y"), "x *** y", "registered value in plain text");
    CHECK_STR(red("S3cr3tValue!"), "***", "value is the whole buffer");
    CHECK_STR(red("S3cr3tValue!tail"), "***tail", "value at the start");
    CHECK_STR(red("head S3cr3tValue!"), "head ***", "value at the end");
    CHECK_STR(red("head S3cr3tValu"), "head S3cr3tValu", "a cut value is not a match");
    CHECK_STR(red("S3cr3tValue!S3cr3tValue!"), "***", "adjacent copies merge");
    calm_redact_clear();
    CHECK_STR(red("x S3cr3tValue! y"), "x S3cr3tValue! y", "clear forgets values");
}

static void encodings(void)
{
    calm_redact_clear();
    add("abc$Xyz=+/1");     /* the shape of an XSUAA client secret */
    CHECK_STR(red("q=abc%24Xyz%3D%2B%2F1&x=1"), "q=***&x=1", "percent-encoded value");
    CHECK_STR(red("q=abc%24Xyz%3d%2b%2f1&x=1"), "q=***&x=1", "lower-case percent-encoding");
    CHECK_STR(red("{\"v\":\"abc$Xyz=+\\/1\"}"), "{\"v\":\"***\"}", "JSON form with \\/ (cjson)");
    CHECK_STR(red("auth YWJjJFh5ej0rLzE= end"), "auth ***= end", "base64 of the value");
    add("pass word 1");
    CHECK_STR(red("a=pass+word+1&b=2"), "a=***&b=2", "form-encoded value (space as +)");
    CHECK_STR(red("a=pass%20word%201"), "a=***", "percent-encoded space");
    add("he said \"hi\"\\now");
    CHECK_STR(red("{\"note\":\"he said \\\"hi\\\"\\\\now\"}"), "{\"note\":\"***\"}",
              "value with quote and backslash inside JSON");
    add("-----BEGIN X-----\nAAAA\n-----END X-----\n");
    CHECK_STR(red("{\"pem\":\"-----BEGIN X-----\\nAAAA\\n-----END X-----\\n\"}"),
              "{\"pem\":\"***\"}", "multi-line value JSON-escaped");
    calm_redact_clear();
}

static void overlaps(void)
{
    calm_redact_clear();
    add("abcdef123456");
    add("123456ghijkl");
    CHECK_STR(red("<abcdef123456ghijkl>"), "<***>", "overlapping values hide their union");
    add("token-abcdefgh");
    add("abcdefgh");
    CHECK_STR(red("x token-abcdefgh y abcdefgh z"), "x *** y *** z", "a value inside another");
    calm_redact_clear();
    add("aaaaaaaa");
    CHECK_STR(red("b aaaaaaaaaaaaaaaaaaa b"), "b *** b", "self-overlapping repeats");
    CHECK_STR(red("aaaaaaa"), "aaaaaaa", "one byte short of a periodic value");
    add("abcabcabc");
    CHECK_STR(red("xabcabcabcabcabcy abcab"), "x***y abcab", "periodic value, run extended");
    calm_redact_clear();
}

static void fields(void)
{
    calm_redact_clear();
    CHECK_STR(red("{\"clientsecret\":\"v1\",\"access_token\":\"v2\",\"refresh_token\":\"v3\"}"),
              "{\"clientsecret\":\"***\",\"access_token\":\"***\",\"refresh_token\":\"***\"}",
              "JSON secret, token fields");
    CHECK_STR(red("{\"key\": \"v4\", \"certificate\" : \"v5\", \"Client_Secret\":\"v6\"}"),
              "{\"key\": \"***\", \"certificate\" : \"***\", \"Client_Secret\":\"***\"}",
              "JSON key, certificate, mixed case");
    CHECK_STR(red("{\"token_type\":\"bearer\",\"tokenurl\":\"https://a/oauth/token\","
                  "\"expires_in\":3600,\"clientid\":\"sb-1\"}"),
              "{\"token_type\":\"bearer\",\"tokenurl\":\"https://a/oauth/token\","
              "\"expires_in\":3600,\"clientid\":\"sb-1\"}",
              "token_type, tokenurl, expires_in, clientid stay");
    CHECK_STR(red("{\"password\":\"a\\\"b,c\\\\\",\"x\":1}"), "{\"password\":\"***\",\"x\":1}",
              "escaped quote and backslash inside the value");
    CHECK_STR(red("{\"key\":\"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\"}"),
              "{\"key\":\"***\"}", "multi-line PEM in a JSON string");
    CHECK_STR(red("{\n  \"uaa\": {\n    \"clientsecret\": \"s\\u0041b\"\n  }\n}"),
              "{\n  \"uaa\": {\n    \"clientsecret\": \"***\"\n  }\n}", "pretty-printed JSON");
    CHECK_STR(red("{\"password\": 123456}"), "{\"password\": ***}", "non-string value");
    CHECK_STR(red("{\"credentials\": {\"a\": 1}}"), "{\"credentials\": {\"a\": 1}}",
              "object values are judged field by field");
    CHECK_STR(red("{\"body\":\"{\\\"client_secret\\\":\\\"xy\\\\\\\"z\\\",\\\"a\\\":1}\"}"),
              "{\"body\":\"{\\\"client_secret\\\":\\\"***\\\",\\\"a\\\":1}\"}",
              "JSON escaped inside a JSON string");
    CHECK_STR(red("{\"password\":\"never closed"), "{\"password\":\"***", "unterminated value");
    CHECK_STR(red("{'client_secret': 'abc'}"), "{'client_secret': '***'}", "single quotes");
    CHECK_STR(red("client_secret = \"abc def\","), "client_secret = \"***\",", "Lua table field");
    CHECK_STR(red("grant_type=client_credentials&client_id=sb-1&client_secret=s3%2Bcr&x=1"),
              "grant_type=client_credentials&client_id=sb-1&client_secret=***&x=1",
              "form body client_secret");
    CHECK_STR(red("set CF_PASSWORD=... in the environment; token=*** or secret=\xe2\x80\xa6"),
              "set CF_PASSWORD=... in the environment; token=*** or secret=\xe2\x80\xa6",
              "help text: a placeholder value is left alone");
    CHECK_STR(red("password=.... and password=..x"), "password=.... and password=***",
              "only a whole placeholder is spared");
    CHECK_STR(red("password=p&assertion=a.b.c&refresh_token=r&access_token=t&token=k"),
              "password=***&assertion=***&refresh_token=***&access_token=***&token=***",
              "form password, assertion, tokens");
    CHECK_STR(red("GET /cb?code=1&access_token=abc HTTP/1.1"),
              "GET /cb?code=1&access_token=*** HTTP/1.1", "query string");
    CHECK_STR(red("refresh token: HTTP 400 invalid_grant"),
              "refresh token: HTTP 400 invalid_grant", "prose with a colon stays");
    CHECK_STR(red("the instance issues instance secrets: every binding of it shares one secret"),
              "the instance issues instance secrets: every binding of it shares one secret",
              "prose after 'secrets:' stays");
    CHECK_STR(red("binding 'k' (instance-secret: its token carries both scopes); password: see below"),
              "binding 'k' (instance-secret: its token carries both scopes); password: see below",
              "prose after 'instance-secret:' and 'password:' stays");
    add("s3cr3t-registered");
    CHECK_STR(red("client_secret: s3cr3t-registered (YAML)"), "client_secret: *** (YAML)",
              "outside a header line a value after 'name:' goes by registration, not by the name");
    calm_redact_clear();
}

static void headers(void)
{
    calm_redact_clear();
    CHECK_STR(red("Authorization: Bearer x"), "Authorization: Bearer ***", "Authorization Bearer");
    CHECK_STR(red("> authorization: Basic dXNlcjpwYXNz\r\n> Accept: */*\r\n"),
              "> authorization: Basic ***\r\n> Accept: */*\r\n", "trace header line, Basic");
    CHECK_STR(red("Proxy-Authorization: Negotiate abc def"), "Proxy-Authorization: Negotiate ***",
              "other schemes");
    CHECK_STR(red("< set-cookie: JSESSIONID=abc; Path=/\n"), "< set-cookie: ***\n", "Set-Cookie");
    CHECK_STR(red("{\"Authorization\":\"Bearer abc\"}"), "{\"Authorization\":\"***\"}",
              "header table as JSON");
    CHECK_STR(red("sent Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln to x"),
              "sent Bearer *** to x", "bare Bearer JWT");
    CHECK_STR(red("sent Bearer abc123 to x"), "sent Bearer *** to x", "bare Bearer short token");
    CHECK_STR(red("header Basic dXNlcjpwYXNz."), "header Basic ***.", "bare Basic base64");
    CHECK_STR(red("Basic authentication failed; missing Bearer token"),
              "Basic authentication failed; missing Bearer token", "prose about schemes stays");
    CHECK_STR(red("id_token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"), "id_token ***", "bare JWT");
}

static void pem_and_urls(void)
{
    calm_redact_clear();
    CHECK_STR(red("a\n-----BEGIN RSA PRIVATE KEY-----\nMIIB\nAAA=\n-----END RSA PRIVATE KEY-----\nb"),
              "a\n***\nb", "PEM private key block");
    CHECK_STR(red("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB"), "***", "PEM without END");
    CHECK_STR(red("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
              "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "certificates stay");
    CHECK_STR(red("proxy https://user:p%40ss@proxy.local:3128/x"), "proxy https://***@proxy.local:3128/x",
              "URL userinfo");
    CHECK_STR(red("url http://proxy.local:3128 and a@b"), "url http://proxy.local:3128 and a@b",
              "no userinfo");
    CHECK_STR(red("see https://host/a@b"), "see https://host/a@b", "@ in the path");
    CHECK_STR(red("plain text, nothing to hide."), "plain text, nothing to hide.", "plain text");
    CHECK_STR(red(""), "", "empty input");
    {
        calm_buf out;
        static const char nul[] = "a\0b";
        calm_buf_init(&out);
        CHECK(calm_redact(nul, 3, &out) == 0 && out.len == 3 && memcmp(out.data, nul, 3) == 0,
              "NUL bytes pass through");
        calm_buf_free(&out);
    }
}

/* 8 MiB bodies must stay cheap: a trace of a big response goes through.
 * The bound is loose (sanitizer builds are slow); quadratic would take hours. */
static void big(void)
{
    size_t n = 8u << 20, i;
    char *s = malloc(n + 1);
    calm_buf out;
    clock_t t0;
    double secs;
    char what[80];

    if (!s) {
        CHECK(0, "malloc 8 MiB");
        return;
    }
    calm_redact_clear();
    for (i = 0; i < 10; i++) {
        char v[32];
        snprintf(v, sizeof v, "secret-number-%zu-xyz", i);
        add(v);
    }
    for (i = 0; i < n; i++)
        s[i] = "{\"name\":\"value 12\",\"clientsecret\":\"q\"}, "[i % 41];
    s[n] = '\0';
    calm_buf_init(&out);
    t0 = clock();
    CHECK(calm_redact(s, n, &out) == 0, "8 MiB JSON-ish body redacts");
    secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    snprintf(what, sizeof what, "8 MiB JSON-ish body with 10 secrets in %.2f s (< 10)", secs);
    CHECK(secs < 10.0, what);
    calm_buf_free(&out);

    {
        /* inputs built to make a naive scanner quadratic */
        static const char *const bad[] = { "password=", "{\"token\":\"", "Authorization: ",
                                           "https://", "-----BEGIN PRIVATE KEY-----", "Bearer ",
                                           "\"key\"   " };
        for (i = 0; i < sizeof bad / sizeof *bad; i++) {
            size_t k, bl = strlen(bad[i]);
            for (k = 0; k < n; k++)
                s[k] = bad[i][k % bl];
            calm_buf_init(&out);
            t0 = clock();
            k = (size_t)calm_redact(s, n, &out);
            secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
            snprintf(what, sizeof what, "8 MiB of '%s' repeated in %.2f s (< 10)", bad[i], secs);
            CHECK(k == 0 && secs < 10.0, what);
            calm_buf_free(&out);
        }
    }
    calm_redact_clear();
    add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    memset(s, 'a', n);
    calm_buf_init(&out);
    t0 = clock();
    CHECK(calm_redact(s, n, &out) == 0 && strcmp(out.data, "***") == 0, "8 MiB of 'a' is one run");
    secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    snprintf(what, sizeof what, "8 MiB of a periodic value in %.2f s (< 10)", secs);
    CHECK(secs < 10.0, what);
    calm_buf_free(&out);
    calm_redact_clear();
    free(s);
}

/* A fleet registers secrets of thousands of tenants: every one of 20 000
 * values (and its encodings) is still found, in any order of registration,
 * next to the others and once each in the count. */
static void many(void)
{
    enum { N = 20000 };
    char v[32], line[128];
    calm_buf out;
    int i, hidden = 1, kept = 1;
    calm_redact_clear();
    for (i = 0; i < N; i++) {
        snprintf(v, sizeof v, "tenant%05d-secret/%d", i, i * 7919 % 10007);
        calm_redact_add(v, strlen(v));
    }
    calm_redact_add("tenant00000-secret/0", 20);   /* again: counted once */
    CHECK(calm_redact_count() == N, "20 000 values registered, a repeat counted once");
    calm_buf_init(&out);
    for (i = 0; i < N; i += 997) {
        snprintf(v, sizeof v, "tenant%05d-secret/%d", i, i * 7919 % 10007);
        snprintf(line, sizeof line, "a=%s b=tenant%05d-secret c=%s", v, i, v);
        calm_buf_reset(&out);
        if (calm_redact(line, strlen(line), &out) != 0) hidden = 0;
        snprintf(line, sizeof line, "a=*** b=tenant%05d-secret c=***", i);
        if (!out.data || strcmp(out.data, line) != 0) hidden = 0;
    }
    CHECK(hidden, "each of 20 000 values is hidden; a prefix of one is not");
    calm_buf_reset(&out);
    snprintf(v, sizeof v, "tenant%05d-secret%%2F%d", 4242, 4242 * 7919 % 10007);
    snprintf(line, sizeof line, "form: x=%s&y=1", v);
    kept = calm_redact(line, strlen(line), &out) == 0 && strcmp(out.data, "form: x=***&y=1") == 0;
    CHECK(kept, "the percent-encoded form of one of 20 000 values is hidden");
    calm_buf_free(&out);
    calm_redact_clear();
}

/* Scopes: a fleet registers each tenant's secrets in the tenant's scope and
 * forgets them when the tenant is done; values of other scopes and of the
 * whole run (scope 0) stay hidden, also when registered in both. */
static void scopes(void)
{
    unsigned a, b;
    calm_redact_clear();
    a = calm_redact_scope_new();
    b = calm_redact_scope_new();
    CHECK(a != 0 && b != 0 && a != b, "scopes are new and nonzero");
    add("whole-run-secret");
    calm_redact_set_scope(a);
    add("tenant-a-secret");
    add("shared/secret+1");        /* in a and in b */
    add("whole-run-secret");       /* already for the whole run: stays */
    calm_redact_set_scope(b);
    add("tenant-b-secret");
    add("shared/secret+1");
    calm_redact_set_scope(0);
    CHECK(calm_redact_count() == 5, "a value in two scopes counts in each");
    CHECK_STR(red("tenant-a-secret tenant-b-secret shared%2Fsecret%2B1"), "*** *** ***",
              "values of live scopes are hidden, encoded forms too");
    CHECK(calm_redact_forget(a) == 2, "forget(a) forgets a's two values");
    CHECK(calm_redact_count() == 3, "... and the count drops by them");
    CHECK_STR(red("tenant-a-secret whole-run-secret tenant-b-secret shared%2Fsecret%2B1"),
              "tenant-a-secret *** *** ***",
              "after forget(a): a's own value prints; scope 0's, b's and b's copy of the shared one do not");
    CHECK(calm_redact_forget(a) == 0, "forgetting a scope twice forgets nothing more");
    CHECK(calm_redact_forget(0) == 0, "scope 0 is never forgotten");
    CHECK(calm_redact_forget(b) == 2, "forget(b)");
    CHECK_STR(red("tenant-b-secret shared/secret+1 whole-run-secret"), "tenant-b-secret shared/secret+1 ***",
              "after forget(b): only the whole run's value is hidden");
    calm_redact_set_scope(b);
    add("tenant-b-again");
    calm_redact_set_scope(0);
    CHECK_STR(red("tenant-b-again"), "***", "a scope registers again after forget");
    calm_redact_clear();
}

int main(void)
{
    check_suite = "unit/redact";
    registry();
    encodings();
    overlaps();
    fields();
    headers();
    pem_and_urls();
    big();
    many();
    scopes();
    red("");            /* frees the last result */
    calm_redact_clear();
    return CHECK_DONE();
}
