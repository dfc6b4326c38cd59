/* needs: src/codec.c src/buf.c */
/* fuzz_codec.c: libFuzzer target for codec.c. Besides "no crash, no leak,
 * no UB" it checks properties that must hold for every input:
 *   - encode then decode gives the input back (base64 both alphabets,
 *     percent and form encoding);
 *   - b64 decoding is strict: whatever it accepts re-encodes to the same
 *     text (modulo padding), so garbage is never silently repaired;
 *   - a failed decode leaves what the buffer held before untouched.
 * Build: clang-14 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude
 *        tests/fuzz/fuzz_codec.c src/codec.c src/buf.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX "prefix"

static void require(int cond)
{
    if (!cond)
        abort();
}

/* Strips '=' so padded and unpadded spellings compare equal. */
static size_t unpad(const char *s, size_t n)
{
    while (n && s[n - 1] == '=')
        n--;
    return n;
}

static void check_b64_decode(const uint8_t *data, size_t size)
{
    calm_buf b, e;
    int rc, url;

    calm_buf_init(&b);
    calm_buf_puts(&b, PREFIX);
    rc = calm_b64_decode((const char *)data, size, &b);
    require(rc == 0 || rc == -1);
    require(b.data[b.len] == '\0');
    if (rc != 0) {
        require(b.len == strlen(PREFIX) && memcmp(b.data, PREFIX, b.len) == 0);
        calm_buf_free(&b);
        return;
    }
    require(b.len >= strlen(PREFIX) && memcmp(b.data, PREFIX, strlen(PREFIX)) == 0);
    url = memchr(data, '-', size) || memchr(data, '_', size);
    calm_buf_init(&e);
    require(calm_b64_encode((const unsigned char *)b.data + strlen(PREFIX), b.len - strlen(PREFIX), url, &e) == 0);
    require(unpad(e.data, e.len) == unpad((const char *)data, size));
    require(memcmp(e.data, data, unpad(e.data, e.len)) == 0);
    calm_buf_free(&e);
    calm_buf_free(&b);
}

static void check_b64_roundtrip(const uint8_t *data, size_t size, int url)
{
    calm_buf e, d;
    calm_buf_init(&e);
    calm_buf_init(&d);
    require(calm_b64_encode(data, size, url, &e) == 0);
    require(e.len == (url ? (size * 4 + 2) / 3 : (size + 2) / 3 * 4));
    require(calm_b64_decode(e.data, e.len, &d) == 0);
    require(d.len == size && (size == 0 || memcmp(d.data, data, size) == 0));
    calm_buf_free(&e);
    calm_buf_free(&d);
}

static void check_url(const uint8_t *data, size_t size, int form)
{
    calm_buf e, d;
    int rc;

    calm_buf_init(&e);
    calm_buf_init(&d);
    require(calm_url_encode((const char *)data, size, form, &e) == 0);
    require(e.len >= size && e.len <= 3 * size);
    require(calm_url_decode(e.data, e.len, form, &d) == 0);
    require(d.len == size && (size == 0 || memcmp(d.data, data, size) == 0));
    calm_buf_free(&d);

    /* Decoding arbitrary text: never longer than the input, and a failure
     * keeps the earlier content. */
    calm_buf_init(&d);
    calm_buf_puts(&d, PREFIX);
    rc = calm_url_decode((const char *)data, size, form, &d);
    require(rc == 0 || rc == -1);
    if (rc == 0)
        require(d.len - strlen(PREFIX) <= size);
    else
        require(d.len == strlen(PREFIX) && memcmp(d.data, PREFIX, d.len) == 0);
    calm_buf_free(&d);
    calm_buf_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_b64_decode(data, size);
    check_b64_roundtrip(data, size, 0);
    check_b64_roundtrip(data, size, 1);
    check_url(data, size, 0);
    check_url(data, size, 1);
    return 0;
}
