/* check.h: the tiny harness of the C unit tests. Each CHECK prints one TAP-like
 * line ("ok - unit/file: what" or "not ok - ..."); tests/run.sh counts them. */
#ifndef CHECK_H
#define CHECK_H
#include <stdio.h>
#include <string.h>

static int check_failed;
static const char *check_suite = "unit";

#define CHECK(cond, what) do { \
    if (cond) printf("ok - %s: %s\n", check_suite, what); \
    else { printf("not ok - %s: %s (%s:%d: %s)\n", check_suite, what, __FILE__, __LINE__, #cond); check_failed++; } \
} while (0)

#define CHECK_STR(got, want, what) do { \
    const char *g_ = (got), *w_ = (want); \
    if (g_ && w_ && strcmp(g_, w_) == 0) printf("ok - %s: %s\n", check_suite, what); \
    else { printf("not ok - %s: %s (%s:%d: got \"%s\", want \"%s\")\n", check_suite, what, \
                  __FILE__, __LINE__, g_ ? g_ : "(null)", w_ ? w_ : "(null)"); check_failed++; } \
} while (0)

#define CHECK_DONE() (fflush(stdout), check_failed ? 1 : 0)
#endif
