/* src/api/envelope.c: the v4 envelope around every answer. The SDK only looks at
 * the HTTP status to decide success, and at errors[].code/message to report it;
 * the envelope is still always complete, so curl users see the same shape as on
 * api.cloudflare.com. */
#include "api/envelope.h"

#include <stdarg.h>
#include <stdio.h>

json_t *envelope_ok(json_t *result)
{
    return json_pack("{s:b, s:[], s:[], s:o}", "success", 1, "errors", "messages", "result",
                     result ? result : json_null());
}

json_t *envelope_list(json_t *result, const struct envelope_page *info)
{
    json_t *e = envelope_ok(result);

    if (e)
        json_object_set_new(
            e, "result_info",
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "page", (json_int_t)info->page, "per_page",
                      (json_int_t)info->per_page, "count", (json_int_t)info->count, "total_count",
                      (json_int_t)info->total_count, "total_pages", (json_int_t)info->total_pages));
    return e;
}

/* Length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF) at <s>, or 0 if the bytes there are not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */

    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    for (size_t i = 1; i < n; i++) {
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return n;
}

void envelope_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;

    while (*p) {
        size_t n = utf8_len(p);

        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

json_t *envelope_error(int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent (a path, an id), and a cut may split a
     * character: JSON strings must be UTF-8, or json_pack() fails. */
    envelope_utf8_scrub(msg);
    return json_pack("{s:b, s:[{s:i, s:s}], s:[], s:n}", "success", 0, "errors", "code", code,
                     "message", msg, "messages", "result");
}
