/* needs: src/httpdate.c */
/* fuzz_headers: the split of a server's raw header block into fields
 * (calm_header_next), which lhttp.c turns into the response's header table.
 * Any bytes: every value lies inside the input, names are lower-case, NUL-
 * terminated and fit, and the cursor always moves forward. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size, *v;
    char name[128];
    size_t vl, i, fields = 0;
    for (;;) {
        const char *before = p;
        if (!calm_header_next(&p, end, name, sizeof name, &v, &vl)) break;
        if (p <= before || p > end) abort();                       /* progress, in bounds */
        if (v < (const char *)data || v + vl > end) abort();       /* value inside the input */
        if (strlen(name) == 0 || strlen(name) >= sizeof name) abort();
        for (i = 0; name[i]; i++)
            if (name[i] >= 'A' && name[i] <= 'Z') abort();
        if (vl && (v[0] == ' ' || v[vl - 1] == '\r')) abort();      /* trimmed */
        if (++fields > size) abort();
    }
    if (p != end) abort();
    return 0;
}
