/* buf.c: the growable byte buffer every other part of the core writes into
 * (HTTP bodies, encodings, file contents), and the wiping helper.
 *
 * Buffers routinely hold secrets (client secrets, tokens, private keys), so
 * memory that held data is zeroed before it goes back to the allocator: on
 * reset, on free, and on growth (we never realloc, since realloc may leave an
 * unwiped copy of the old block in the heap). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"

/* The smallest block we allocate: avoids a malloc per byte for tiny strings. */
#define BUF_MIN_CAP 64

/* Zeroes memory in a way the compiler may not drop (explicit_bzero is in
 * glibc since 2.25; a plain memset before free is a dead store to it). */
void calm_wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

void calm_buf_init(calm_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Makes room for `extra` more bytes plus the NUL. Returns 0 or -1 (buffer
 * unchanged) when the size overflows or memory runs out. */
static int buf_reserve(calm_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > SIZE_MAX - 1 - b->len)
        return -1;
    need = b->len + extra + 1;
    if (b->data && need <= b->cap)
        return 0;
    cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = malloc(cap);
    if (!p)
        return -1;
    if (b->data) {
        memcpy(p, b->data, b->len + 1);
        calm_wipe(b->data, b->cap);
        free(b->data);
    } else {
        p[0] = '\0';
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int calm_buf_append(calm_buf *b, const void *p, size_t n)
{
    /* Even an empty append allocates, so data is a valid C string afterwards
     * (callers hand b->data to functions that expect one). */
    if (buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int calm_buf_putc(calm_buf *b, int c)
{
    unsigned char ch = (unsigned char)c;
    return calm_buf_append(b, &ch, 1);
}

int calm_buf_puts(calm_buf *b, const char *s)
{
    return calm_buf_append(b, s, strlen(s));
}

/* Keeps the block for reuse but zeroes all of it, not just len bytes: an
 * earlier, longer content may still sit past the current length. */
void calm_buf_reset(calm_buf *b)
{
    if (b->data) {
        calm_wipe(b->data, b->cap);
        b->data[0] = '\0';
    }
    b->len = 0;
}

void calm_buf_free(calm_buf *b)
{
    if (b->data) {
        calm_wipe(b->data, b->cap);
        free(b->data);
    }
    calm_buf_init(b);
}
