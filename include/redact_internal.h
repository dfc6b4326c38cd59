/* redact_internal.h: shared by redact.c (the registry, calm_redact) and
 * redact_rules.c (the shape rules). Not for anything else. */
#ifndef REDACT_INTERNAL_H
#define REDACT_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include "calm.h"

/* Hides [a, b) in the mask; returns b. */
static inline size_t calm_redact_mark(unsigned char *m, size_t a, size_t b)
{
    if (b > a)
        memset(m + a, 1, b - a);
    return b;
}

/* redact_forms.c: appends form `form` (0 .. CALM_REDACT_FORMS - 1) of s,
 * the encodings a registered value may travel in, to o. 0 or -1 on memory. */
#define CALM_REDACT_FORMS 7
int calm_redact_form(int form, const char *s, size_t n, calm_buf *o);

/* Rules 2-4: secret fields, credential headers, Bearer/Basic, bare JWTs. */
void calm_redact_mark_words(const char *in, size_t n, unsigned char *m);
/* Rule 5: scheme://user:pass@host. */
void calm_redact_mark_userinfo(const char *in, size_t n, unsigned char *m);
/* Rule 6: PEM private key blocks. */
void calm_redact_mark_pem(const char *in, size_t n, unsigned char *m);

#endif
