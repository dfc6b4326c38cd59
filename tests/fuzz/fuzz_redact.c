/* needs: src/redact.c src/redact_forms.c src/redact_rules.c src/codec.c src/buf.c */
/* fuzz_redact.c: calm_redact must never print a registered value.
 *
 * Input: lines before the first empty line are values to register, the rest
 * is the text to redact. Checked: no crash or sanitizer report, and no
 * registered value (of at least CALM_REDACT_MIN bytes, without '*') appears
 * in the output. The output can only hold a value that lay inside one
 * unmasked run of the input, and such an occurrence would have been masked,
 * so this holds for every input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size, *text = p;
    const char *vals[8];
    size_t lens[8], nv = 0, i;
    calm_buf out;

    /* the registry header: up to 8 lines, ended by an empty line */
    while (nv < 8) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nl == p)
            break;
        vals[nv] = p;
        lens[nv] = (size_t)(nl - p);
        nv++;
        p = nl + 1;
    }
    if (p < end && *p == '\n') {
        for (i = 0; i < nv; i++)
            if (calm_redact_add(vals[i], lens[i]) != 0)
                abort();
        text = p + 1;
    } else {
        nv = 0;     /* no header: everything is text */
    }

    calm_buf_init(&out);
    if (calm_redact(text, (size_t)(end - text), &out) != 0)
        abort();
    for (i = 0; i < nv; i++) {
        if (lens[i] < CALM_REDACT_MIN || memchr(vals[i], '*', lens[i]))
            continue;
        if (out.len >= lens[i] && memmem(out.data, out.len, vals[i], lens[i]))
            abort();    /* a registered value leaked */
    }
    calm_buf_free(&out);
    calm_redact_clear();
    return 0;
}
