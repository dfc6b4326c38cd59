/* test_url.c: calm_url_parse, calm_url_build and calm_url_is_loopback (url.c)
 * on odd inputs, below the Lua binding (every part freed: make asan). */
#include <stdio.h>

#include "calm.h"
#include "check.h"

/* Parses s; wants why (NULL: success). */
static void refuse(const char *s, const char *want, const char *what)
{
    calm_url u;
    const char *why = NULL;
    int rc = calm_url_parse(s, 0, &u, &why);
    CHECK(rc == -1, what);
    CHECK_STR(why, want, what);
    CHECK(u.scheme == NULL && u.host == NULL && u.path == NULL, "refused: nothing left allocated");
}

static void parts(void)
{
    calm_url u;
    const char *why = NULL;
    int rc = calm_url_parse("HTTPS://Calm.Example:8443/a/../b/%7E?x=1&y=%27#top", 0, &u, &why);
    CHECK(rc == 0, "a full URL parses");
    if (rc) return;
    CHECK_STR(u.scheme, "https", "scheme lower case");
    CHECK_STR(u.host, "calm.example", "host lower case");
    CHECK(u.port == 8443, "port");
    CHECK_STR(u.path, "/b/%7E", "dot segments resolved, %XX kept");
    CHECK_STR(u.query, "x=1&y=%27", "query without '?'");
    CHECK_STR(u.fragment, "top", "fragment without '#'");
    CHECK(!u.ip && !u.loopback && !u.userinfo, "no ip, loopback or userinfo");
    calm_url_free(&u);

    rc = calm_url_parse("http://[::1]:9/", 0, &u, &why);
    CHECK(rc == 0 && strcmp(u.host, "[::1]") == 0 && u.ip && u.loopback && u.port == 9, "IPv6 loopback");
    if (!rc) calm_url_free(&u);
    rc = calm_url_parse("https://h", 0, &u, &why);
    CHECK(rc == 0 && strcmp(u.path, "/") == 0 && !u.query && !u.fragment && !u.port, "bare host: path /");
    if (!rc) calm_url_free(&u);
}

static void userinfo(void)
{
    calm_url u;
    const char *why = NULL;
    int rc = calm_url_parse("http://alice:s3cret@proxy:3128", CALM_URL_USERINFO, &u, &why);
    CHECK(rc == 0 && u.userinfo && strcmp(u.host, "proxy") == 0 && u.port == 3128, "userinfo accepted when asked");
    if (!rc) calm_url_free(&u);
    rc = calm_url_parse("proxy:3128", CALM_URL_DEFAULT_HTTP, &u, &why);
    CHECK(rc == 0 && strcmp(u.scheme, "http") == 0 && u.port == 3128, "host:port is http");
    if (!rc) calm_url_free(&u);
}

static void build(void)
{
    calm_buf out;
    calm_url in;
    const char *why = NULL;
    memset(&in, 0, sizeof in);
    calm_buf_init(&out);
    in.scheme = (char *)"https";
    in.host = (char *)"h";
    in.port = 444;
    in.path = (char *)"/p%2Cq";
    in.query = (char *)"a=%2C";
    CHECK(calm_url_build(&in, &out, &why) == 0, "build");
    CHECK_STR(out.data, "https://h:444/p%2Cq?a=%2C", "build keeps upper-case %XX");
    calm_buf_reset(&out);
    in.host = (char *)"h/x";
    CHECK(calm_url_build(&in, &out, &why) == -1 && out.len == 0, "a host with '/' is refused");
    in.host = (char *)"h";
    in.path = (char *)"/$(x)";
    CHECK(calm_url_build(&in, &out, &why) == -1, "a path with $( is refused");
    CHECK_STR(why, "has characters a URL path does not carry", "why");
    calm_buf_free(&out);
}

int main(void)
{
    check_suite = "unit/url";
    parts();
    userinfo();
    build();
    refuse("example.com/x", "is not an absolute URL", "no scheme");
    refuse("https:///x", "has no host", "triple slash (libcurl would take x as host)");
    refuse("https://u:p@h/", "must not carry a user name or password", "userinfo");
    refuse("https://h:0/", "has an invalid port", "port 0");
    refuse("https://h:70000/", "has an invalid port", "port > 65535");
    refuse("https://[fe80::1%25eth0]/", "has an invalid host name", "IPv6 zone id");
    refuse("https://h_x/", "has an invalid host name", "underscore host");
    refuse("https://h/%g0", "has a bad percent-encoding (% not followed by two hex digits)", "bad %XX");
    refuse("https://h/a b", "contains spaces or non-ASCII characters", "space");
    refuse("https://h/\x01", "contains a line break or control character", "control character");
    refuse("https://h/'x'", "has characters a URL path does not carry", "quote in the path");
    CHECK(calm_url_is_loopback("127.0.0.1") && calm_url_is_loopback("x.localhost") &&
          calm_url_is_loopback("[::1]") && calm_url_is_loopback("LOCALHOST"), "loopback hosts");
    CHECK(!calm_url_is_loopback("127.0.0.1.example") && !calm_url_is_loopback("localhost.example") &&
          !calm_url_is_loopback("128.0.0.1") && !calm_url_is_loopback("127.0.0"), "not loopback");
    return CHECK_DONE();
}
