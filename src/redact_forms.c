/* redact_forms.c: the forms a registered secret may be printed in (rule 1 of
 * calm_redact): percent- and form-encoded (a secret in a request body or
 * query, upper- and lower-case hex), JSON-escaped (a PEM key in a JSON
 * document has "\n" for its newlines; '/' escaped or not) and base64 of the
 * whole value (standard and URL alphabet, without padding). */
#include "calm.h"
#include "redact_internal.h"

static const char hex_lower[] = "0123456789abcdef";

/* Percent-encoding (codec.c) with lower-case hex digits, as some encoders write it. */
static int enc_percent_lower(const char *s, size_t n, calm_buf *o)
{
    size_t i, from = o->len;

    if (calm_url_encode(s, n, 0, o) != 0)
        return -1;
    for (i = from; i + 2 < o->len; i++)
        if (o->data[i] == '%') {
            o->data[i + 1] = (char)(o->data[i + 1] | (o->data[i + 1] >= 'A' ? 0x20 : 0));
            o->data[i + 2] = (char)(o->data[i + 2] | (o->data[i + 2] >= 'A' ? 0x20 : 0));
        }
    return 0;
}

/* The JSON string form. slash: escape '/' as "\/" as lua-cjson does. */
static int enc_json(const unsigned char *s, size_t n, int slash, calm_buf *o)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        unsigned char c = s[i];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '/': e = slash ? "\\/" : "/"; break;
        default: break;
        }
        if (e) {
            rc = calm_buf_puts(o, e);
        } else if (c < 0x20) {
            char u[6] = { '\\', 'u', '0', '0', hex_lower[c >> 4], hex_lower[c & 15] };
            rc = calm_buf_append(o, u, 6);
        } else {
            rc = calm_buf_putc(o, c);
        }
    }
    return rc;
}

/* Base64 (codec.c) without padding, so it matches whether or not '=' follows. */
static int enc_b64(const unsigned char *s, size_t n, int url, calm_buf *o)
{
    if (calm_b64_encode(s, n, url, o) != 0)
        return -1;
    while (o->len && o->data[o->len - 1] == '=')
        o->data[--o->len] = '\0';
    return 0;
}

/* Appends form `form` (0 .. CALM_REDACT_FORMS - 1) of s to o. Returns 0 or -1
 * on memory. */
int calm_redact_form(int form, const char *s, size_t n, calm_buf *o)
{
    const unsigned char *u = (const unsigned char *)s;

    switch (form) {
    case 0: return calm_url_encode(s, n, 0, o);
    case 1: return calm_url_encode(s, n, 1, o);
    case 2: return enc_percent_lower(s, n, o);
    case 3: return enc_json(u, n, 0, o);
    case 4: return enc_json(u, n, 1, o);
    case 5: return enc_b64(u, n, 0, o);
    default: return enc_b64(u, n, 1, o);
    }
}
