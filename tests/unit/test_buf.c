/* test_buf.c: calm_buf growth, NUL termination, failure on size overflow,
 * and that reset/wipe really zero what the buffer held. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"
#include "check.h"

static int all_zero(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_basics(void)
{
    calm_buf b;
    calm_buf_init(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0, "init leaves an empty buffer without memory");
    CHECK(calm_buf_append(&b, "", 0) == 0 && b.data && b.data[0] == '\0' && b.len == 0,
          "an empty append yields a valid empty C string");
    CHECK(calm_buf_puts(&b, "hello") == 0 && calm_buf_putc(&b, ' ') == 0 &&
          calm_buf_append(&b, "world!!", 5) == 0, "puts, putc and append succeed");
    CHECK_STR(b.data, "hello world", "appended pieces concatenate");
    CHECK(b.len == 11 && b.cap > b.len, "len counts bytes without the NUL, cap leaves room for it");
    CHECK(calm_buf_append(&b, "\0x", 2) == 0 && b.len == 13 && b.data[11] == '\0' && b.data[12] == 'x' &&
          b.data[13] == '\0', "embedded NUL bytes are kept and the buffer stays NUL-terminated");
    CHECK(calm_buf_putc(&b, 0xff) == 0 && (unsigned char)b.data[13] == 0xff, "putc stores a byte value above 127");
    calm_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0, "free returns the buffer to the init state");
    calm_buf_free(&b);
    CHECK(b.data == NULL, "free twice is harmless");
}

static void test_growth(void)
{
    calm_buf b;
    char chunk[1000];
    size_t i, total = 0;
    int ok = 1;

    calm_buf_init(&b);
    for (i = 0; i < 3000; i++) {
        memset(chunk, 'a' + (int)(i % 26), sizeof chunk);
        if (calm_buf_append(&b, chunk, (i * 7) % sizeof chunk) != 0)
            ok = 0;
        total += (i * 7) % sizeof chunk;
    }
    CHECK(ok && b.len == total && b.data[total] == '\0', "many appends of varying size reach the right length");
    /* Spot-check the content survived every reallocation. */
    total = 0;
    for (i = 0; i < 3000 && ok; i++) {
        size_t n = (i * 7) % sizeof chunk;
        if (n && (b.data[total] != 'a' + (int)(i % 26) || b.data[total + n - 1] != 'a' + (int)(i % 26)))
            ok = 0;
        total += n;
    }
    CHECK(ok, "content is intact after growth");
    calm_buf_free(&b);

    calm_buf_init(&b);
    {
        char *big = malloc(5u << 20);
        memset(big, 'z', 5u << 20);
        CHECK(calm_buf_append(&b, big, 5u << 20) == 0 && b.len == (5u << 20) && b.data[b.len] == '\0',
              "a single 5 MiB append works");
        free(big);
    }
    calm_buf_free(&b);
}

static void test_overflow(void)
{
    calm_buf b;
    calm_buf_init(&b);
    calm_buf_puts(&b, "keep");
    CHECK(calm_buf_append(&b, "x", SIZE_MAX) == -1, "an append whose size overflows fails");
    CHECK(calm_buf_append(&b, "x", SIZE_MAX - 2) == -1, "an append just below SIZE_MAX fails");
    CHECK(b.len == 4 && strcmp(b.data, "keep") == 0, "a failed append leaves the buffer as it was");
    calm_buf_free(&b);
}

static void test_wipe(void)
{
    calm_buf b;
    char s[32];
    size_t cap;

    calm_buf_init(&b);
    calm_buf_puts(&b, "a-long-client-secret-value-0123456789");
    cap = b.cap;
    /* Make the content shorter, the way a caller truncating len would. */
    b.len = 3;
    b.data[3] = '\0';
    calm_buf_reset(&b);
    CHECK(b.len == 0 && b.data && b.cap == cap, "reset keeps the block for reuse");
    CHECK(all_zero(b.data, b.cap), "reset zeroes the whole block, also past the current length");
    calm_buf_puts(&b, "again");
    CHECK_STR(b.data, "again", "the buffer is usable after reset");
    calm_buf_free(&b);

    memset(s, 'S', sizeof s);
    calm_wipe(s, sizeof s);
    CHECK(all_zero(s, sizeof s), "calm_wipe zeroes memory");
    calm_wipe(NULL, 10);
    CHECK(1, "calm_wipe(NULL) is harmless");

    calm_buf_init(&b);
    calm_buf_reset(&b);
    CHECK(b.data == NULL && b.len == 0, "reset of a never-used buffer is harmless");
}

int main(void)
{
    check_suite = "unit/buf";
    test_basics();
    test_growth();
    test_overflow();
    test_wipe();
    return CHECK_DONE();
}
