/* lx509.c: calm.x509 — what calmbind reads from an X.509 key's certificate,
 * parsed by OpenSSL's libcrypto (never by hand: ASN.1 time has two encodings
 * and a PEM chain can hold several certificates).
 *
 *   x509.not_after(pem) -> epoch seconds | nil, message, "BAD_CERTIFICATE"
 *
 * The first certificate of the PEM text counts: BTP's uaa.certificate is the
 * key's own certificate followed by its issuers, and the key stops working
 * when its own certificate does. Messages never quote the PEM (calmbind
 * treats uaa.certificate as a secret field). */
#include <limits.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "calm_lua.h"

/* The notAfter of the first PEM certificate in text, as seconds since the
 * epoch in *out: NULL, or what went wrong. Frees what it made and leaves
 * OpenSSL's error queue empty either way (it is per thread and shared). */
static const char *first_not_after(const char *text, size_t len, lua_Integer *out)
{
    const char *why = NULL;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    X509 *cert = NULL;
    struct tm tm;
    time_t t;
    if (!bio) {
        why = "out of memory";
        goto done;
    }
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!cert) {
        why = "no PEM certificate that OpenSSL can read";
        goto done;
    }
    if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm)) {
        why = "the certificate's notAfter is not a valid time";
        goto done;
    }
    t = timegm(&tm);   /* ASN1_TIME_to_tm gives UTC */
    if (t == (time_t)-1) {
        why = "the certificate's notAfter is out of range";
        goto done;
    }
    *out = (lua_Integer)t;
done:
    X509_free(cert);
    BIO_free(bio);
    ERR_clear_error();
    return why;
}

/* x509.not_after(pem) -> epoch seconds | nil, message, "BAD_CERTIFICATE".
 * A non-string argument raises; text that holds no readable certificate is
 * an expected failure (a damaged key file). */
static int x509_not_after(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_Integer when = 0;
    const char *why;
    luaL_argcheck(L, len <= INT_MAX, 1, "too long for a certificate");
    why = first_not_after(text, len, &when);
    if (why) {
        luaL_pushfail(L);
        lua_pushstring(L, why);
        lua_pushliteral(L, "BAD_CERTIFICATE");
        return 3;
    }
    lua_pushinteger(L, when);
    return 1;
}

static const luaL_Reg x509_funcs[] = {
    {"not_after", x509_not_after},
    {NULL, NULL}
};

int luaopen_calm_x509(lua_State *L)
{
    luaL_newlib(L, x509_funcs);
    return 1;
}
