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

json_t *envelope_error(int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:[{s:i, s:s}], s:[], s:n}", "success", 0, "errors", "code", code,
                     "message", msg, "messages", "result");
}
