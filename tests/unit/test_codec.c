/* test_codec.c: codec.c against RFC 4648 and RFC 3986 vectors, round trips
 * over every byte value, rejection of malformed input, and the calm.codec
 * Lua module (driven through an embedded lua_State). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "calm_lua.h"
#include "check.h"

/* Renders s for a check description: one line, non-printables as \xNN. */
static const char *show(const char *s)
{
    static char out[128];
    size_t o = 0;
    for (; *s && o + 5 < sizeof out; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* Encodes/decodes into a fresh buffer and compares with want (NULL: must
 * fail). The returned text is the C string form, fine for the vectors. */
static void b64_enc(const char *in, int url, const char *want)
{
    calm_buf b;
    char what[160];
    calm_buf_init(&b);
    snprintf(what, sizeof what, "b64%s encode \"%s\"", url ? "url" : "", show(in));
    CHECK(calm_b64_encode((const unsigned char *)in, strlen(in), url, &b) == 0, what);
    CHECK_STR(b.data, want, what);
    calm_buf_free(&b);
}

static void b64_dec(const char *in, const char *want)
{
    calm_buf b;
    char what[160];
    int rc;
    calm_buf_init(&b);
    rc = calm_b64_decode(in, strlen(in), &b);
    if (want) {
        snprintf(what, sizeof what, "b64 decode \"%s\"", show(in));
        CHECK(rc == 0, what);
        CHECK_STR(b.data, want, what);
    } else {
        snprintf(what, sizeof what, "b64 decode rejects \"%s\"", show(in));
        CHECK(rc == -1, what);
    }
    calm_buf_free(&b);
}

static void test_b64_vectors(void)
{
    /* RFC 4648 section 10. */
    static const char *const v[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    static const char *const u[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        b64_enc(v[i][0], 0, v[i][1]);
        b64_enc(v[i][0], 1, u[i]);
        b64_dec(v[i][1], v[i][0]);
        b64_dec(u[i], v[i][0]);
    }
    /* The two alphabets differ only in digits 62 and 63. */
    b64_enc("\xfb\xff", 0, "+/8=");
    b64_enc("\xfb\xff", 1, "-_8");
    b64_dec("+/8=", "\xfb\xff");
    b64_dec("-_8", "\xfb\xff");
    b64_dec("-_8=", "\xfb\xff");
    b64_dec("+/8", "\xfb\xff");
}

static void test_b64_rejects(void)
{
    static const char *const bad[] = {
        "Z", "Zm9vY", "Zg=", "Zg===", "Zm8==", "Zm9v=", "=", "==", "====", "Zg==Zg==",
        "Zm 9v", "Zm9v\n", " Zm9v", "Zm9v\t", "Zm\r\n9v", "Zm9*", "Zm9v.", "Zh==", "Zm9=",
        "Zm-/", "+-8=", "_/8", "Z=g=", "\x80\x81\x82\x83",
    };
    size_t i;
    calm_buf b;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        b64_dec(bad[i], NULL);
    CHECK(calm_b64_decode("Zm9v\0Zm9v", 9, (calm_buf_init(&b), &b)) == -1, "b64 decode rejects a NUL byte");
    calm_buf_free(&b);

    /* A failed decode appends nothing to what the buffer already held. */
    calm_buf_init(&b);
    calm_buf_puts(&b, "pre");
    CHECK(calm_b64_decode("Zm9vYmFyZm9vYmFy!", 17, &b) == -1 && b.len == 3 && strcmp(b.data, "pre") == 0,
          "b64 decode failure leaves earlier buffer content intact");
    CHECK(calm_b64_decode("Zm9v", 4, &b) == 0 && strcmp(b.data, "prefoo") == 0, "b64 decode appends");
    calm_buf_free(&b);
}

static void test_b64_all_bytes(void)
{
    unsigned char all[256];
    calm_buf e, d;
    int url, len, ok = 1;
    for (len = 0; len < 256; len++)
        all[len] = (unsigned char)len;
    for (url = 0; url <= 1; url++) {
        /* Every length 0..256 covers all three tail shapes at every offset. */
        for (len = 0; len <= 256 && ok; len++) {
            calm_buf_init(&e);
            calm_buf_init(&d);
            if (calm_b64_encode(all, (size_t)len, url, &e) != 0 || calm_b64_decode(e.data, e.len, &d) != 0 ||
                d.len != (size_t)len || (len && memcmp(d.data, all, (size_t)len) != 0))
                ok = 0;
            if (e.len != (url ? ((size_t)len * 4 + 2) / 3 : ((size_t)len + 2) / 3 * 4))
                ok = 0;
            calm_buf_free(&e);
            calm_buf_free(&d);
        }
        CHECK(ok, url ? "b64url round trip of bytes 0..255 at every length"
                      : "b64 round trip of bytes 0..255 at every length");
    }
}

static void url_case(const char *in, size_t n, int form, const char *want, const char *what)
{
    calm_buf b;
    calm_buf_init(&b);
    CHECK(calm_url_encode(in, n, form, &b) == 0, what);
    CHECK_STR(b.data, want, what);
    calm_buf_free(&b);
}

static void url_dec(const char *in, int form, const char *want, const char *what)
{
    calm_buf b;
    int rc;
    calm_buf_init(&b);
    rc = calm_url_decode(in, strlen(in), form, &b);
    if (want) {
        CHECK(rc == 0, what);
        CHECK_STR(b.data, want, what);
    } else {
        CHECK(rc == -1, what);
    }
    calm_buf_free(&b);
}

static void test_url(void)
{
    unsigned char all[256];
    calm_buf e, d;
    size_t i;
    int form, ok;

    url_case("AZaz09-._~", 10, 0, "AZaz09-._~", "unreserved characters stay as they are");
    url_case("a b+c&d=e/f?g#h%", 16, 0, "a%20b%2Bc%26d%3De%2Ff%3Fg%23h%25", "reserved characters are escaped");
    url_case("a b+c", 5, 1, "a+b%2Bc", "form encoding writes space as +, + as %2B");
    url_case("\x00\xff\x7f", 3, 0, "%00%FF%7F", "NUL, 0xFF and DEL are escaped with upper-case hex");
    url_case("", 0, 0, "", "empty string encodes to empty");
    url_case("\xc3\xa4", 2, 0, "%C3%A4", "UTF-8 is escaped byte by byte");

    url_dec("a%20b+c", 0, "a b+c", "plain decoding keeps +");
    url_dec("a%20b+c", 1, "a b c", "form decoding turns + into space");
    url_dec("%c3%A4%2f", 0, "\xc3\xa4/", "either hex case decodes");
    url_dec("a=b&c/d?", 0, "a=b&c/d?", "unescaped reserved characters pass through");
    url_dec("%", 0, NULL, "a lone % is rejected");
    url_dec("abc%4", 0, NULL, "a truncated %X is rejected");
    url_dec("%zz", 0, NULL, "%zz is rejected");
    url_dec("%4g", 0, NULL, "%4g is rejected");
    url_dec("%g4", 0, NULL, "%g4 is rejected");
    url_dec("% 1", 0, NULL, "% followed by space is rejected");
    url_dec("%+1", 1, NULL, "%+1 is rejected in form mode too");

    calm_buf_init(&d);
    calm_url_decode("%00", 3, 0, &d);
    CHECK(d.len == 1 && d.data[0] == '\0', "%00 decodes to one NUL byte");
    calm_buf_free(&d);

    for (i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (form = 0; form <= 1; form++) {
        calm_buf_init(&e);
        calm_buf_init(&d);
        ok = calm_url_encode((const char *)all, 256, form, &e) == 0 &&
             calm_url_decode(e.data, e.len, form, &d) == 0 && d.len == 256 && memcmp(d.data, all, 256) == 0;
        for (i = 0; ok && i < e.len; i++) {
            unsigned char c = (unsigned char)e.data[i];
            if (!(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%", c) ||
                  (form && c == '+')))
                ok = 0;
        }
        CHECK(ok, form ? "form round trip of bytes 0..255, output only unreserved, % and +"
                       : "url round trip of bytes 0..255, output only unreserved and %");
        calm_buf_free(&e);
        calm_buf_free(&d);
    }
}

static void test_random(void)
{
    unsigned char a[64], b[64], z[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(z, 0, sizeof z);
    CHECK(calm_random_bytes(a, sizeof a) == 0 && calm_random_bytes(b, sizeof b) == 0, "random bytes succeed");
    CHECK(memcmp(a, b, sizeof a) != 0 && memcmp(a, z, sizeof a) != 0, "two random draws differ and are not zero");
    CHECK(calm_random_bytes(a, 0) == 0, "zero random bytes is fine");
    {
        unsigned char *big = malloc(100000);
        CHECK(calm_random_bytes(big, 100000) == 0, "a large random draw (several getrandom calls) succeeds");
        free(big);
    }
}

/* ---- calm.codec from Lua --------------------------------------------------- */

/* check(cond, what): CHECK from Lua, so Lua-side cases report like C ones. */
static int l_check(lua_State *L)
{
    CHECK(lua_toboolean(L, 1), luaL_checkstring(L, 2));
    return 0;
}

static const char lua_cases[] =
    "local codec = require 'calm.codec'\n"
    "check(codec.b64encode('foobar') == 'Zm9vYmFy', 'lua: b64encode')\n"
    "check(codec.b64url_encode('\\251\\255') == '-_8', 'lua: b64url_encode has no padding')\n"
    "check(codec.b64decode('-_8') == '\\251\\255' and codec.b64decode('+/8=') == '\\251\\255',\n"
    "      'lua: b64decode takes either alphabet')\n"
    "local v, msg, code = codec.b64decode('Zm9v YmFy')\n"
    "check(v == nil and code == 'INVALID' and msg:find('b64decode'), 'lua: b64decode returns nil, msg, INVALID')\n"
    "check(not msg:find('Zm9v'), 'lua: the b64decode message does not quote the input')\n"
    "local all = {} for i = 0, 255 do all[#all + 1] = string.char(i) end all = table.concat(all)\n"
    "check(codec.b64decode(codec.b64encode(all)) == all, 'lua: b64 round trip of all bytes')\n"
    "check(codec.url_decode(codec.url_encode(all)) == all, 'lua: url round trip of all bytes')\n"
    "check(codec.url_encode('a b/~') == 'a%20b%2F~', 'lua: url_encode')\n"
    "check(codec.url_decode('a+b%21') == 'a+b!', 'lua: url_decode keeps +')\n"
    "v, msg, code = codec.url_decode('%G1')\n"
    "check(v == nil and code == 'INVALID', 'lua: url_decode of a bad escape returns nil, msg, INVALID')\n"
    "check(codec.form_encode{b = '2 3', a = 'x&y', c = 5, ['k y'] = ''} == 'a=x%26y&b=2+3&c=5&k+y=',\n"
    "      'lua: form_encode sorts keys and encodes space as +')\n"
    "check(codec.form_encode{} == '', 'lua: form_encode of an empty table')\n"
    "check(codec.form_encode{grant_type = 'client_credentials', client_id = 'sb-x!b1|y'} ==\n"
    "      'client_id=sb-x%21b1%7Cy&grant_type=client_credentials', 'lua: form_encode of an OAuth body')\n"
    "local t = {z = 1.5, n = 3}\n"
    "codec.form_encode(t)\n"
    "check(math.type(t.n) == 'integer' and t.z == 1.5, 'lua: form_encode leaves number values in the table alone')\n"
    "local ok, err = pcall(codec.form_encode, {a = 'x', secret = true})\n"
    "check(not ok and err:find(\"'secret'\") and err:find('boolean'), 'lua: form_encode raises naming the bad key')\n"
    "ok, err = pcall(codec.form_encode, {'positional'})\n"
    "check(not ok and err:find('keys must be strings'), 'lua: form_encode raises on a non-string key')\n"
    "ok = pcall(codec.form_encode, 'a=b')\n"
    "check(not ok, 'lua: form_encode raises on a non-table')\n"
    "local f = codec.form_decode('a=1&b=x+y&&c&d=%41&e=&=v&a=2&p=q=r')\n"
    "check(f.a == '2' and f.b == 'x y' and f.c == '' and f.d == 'A' and f.e == '' and f[''] == 'v'\n"
    "      and f.p == 'q=r', 'lua: form_decode fields, empty pairs, bare names, last one wins')\n"
    "local n = 0 for _ in pairs(codec.form_decode('')) do n = n + 1 end\n"
    "check(n == 0, 'lua: form_decode of an empty string is an empty table')\n"
    "v, msg, code = codec.form_decode('a=%zz')\n"
    "check(v == nil and code == 'INVALID', 'lua: form_decode of a bad escape returns nil, msg, INVALID')\n"
    "local body = {client_secret = all, ['x y'] = 'a+b&c=d%'}\n"
    "local back = codec.form_decode(codec.form_encode(body))\n"
    "check(back.client_secret == all and back['x y'] == 'a+b&c=d%', 'lua: form round trip of all bytes')\n"
    "local h = codec.random_hex(16)\n"
    "check(#h == 32 and h:match('^[0-9a-f]+$') and h ~= codec.random_hex(16), 'lua: random_hex')\n"
    "check(not pcall(codec.random_hex, 0) and not pcall(codec.random_hex, 1025) and\n"
    "      not pcall(codec.random_hex, 1.5), 'lua: random_hex raises outside 1..1024')\n"
    "local u = codec.uuid()\n"
    "check(u:match('^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'),\n"
    "      'lua: uuid is a version 4, RFC 4122 variant UUID')\n"
    "check(u ~= codec.uuid(), 'lua: two uuids differ')\n"
    "ok = pcall(codec.b64encode, {})\n"
    "check(not ok, 'lua: b64encode raises on a table')\n"
    "collectgarbage() collectgarbage()\n"
    "check(true, 'lua: the collector runs the buffer boxes __gc cleanly')\n";

static void test_lua(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "calm.codec", luaopen_calm_codec, 0);
    lua_pop(L, 1);
    lua_register(L, "check", l_check);
    if (luaL_loadbuffer(L, lua_cases, sizeof lua_cases - 1, "=codec_cases") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK) {
        CHECK(0, lua_tostring(L, -1));
    }
    lua_close(L);
}

int main(void)
{
    check_suite = "unit/codec";
    test_b64_vectors();
    test_b64_rejects();
    test_b64_all_bytes();
    test_url();
    test_random();
    test_lua();
    return CHECK_DONE();
}
