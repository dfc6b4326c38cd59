/* needs: src/httpdate.c */
/* fuzz_retry_after.c: calm_parse_retry_after on arbitrary header values.
 * Checked: no crash or sanitizer report; a success is a finite wait >= 0
 * that never exceeds what a year-9999 date or 2^31-1 seconds can give. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "calm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const time_t now = 1731337140;  /* 2024-11-11 14:59:00 UTC */
    double s = -1;

    if (calm_parse_retry_after((const char *)data, size, now, &s) == 0) {
        if (!(s >= 0) || !isfinite(s) || s > 253402300800.0)
            abort();
    }
    return 0;
}
