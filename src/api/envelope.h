/* src/api/envelope.h: Cloudflare v4 response envelopes
 * (../shared/notes/cloudflare-api.md section 1), and the error codes the API
 * answers with besides the app validator's (proxy/app.h). docs/API.md lists them
 * all with their HTTP status. */
#ifndef API_ENVELOPE_H
#define API_ENVELOPE_H

#include <jansson.h>
#include <stddef.h>

enum envelope_err_code {
    ENVELOPE_ERR_ZONE_EXISTS = 1061,    /* Cloudflare: "<name> already exists" */
    ENVELOPE_ERR_MALFORMED_JSON = 6007, /* Cloudflare: malformed JSON in request body */
    ENVELOPE_ERR_TOO_LARGE = 6100,      /* prism: body over 1 MiB (HTTP 413) */
    ENVELOPE_ERR_INVALID_FIELD = 6101,  /* prism: wrong type or value in a zone/token body */
    ENVELOPE_ERR_INVALID_QUERY = 6102,  /* prism: bad query parameter (page, per_page, ...) */
    ENVELOPE_ERR_METHOD = 7001,         /* Cloudflare: method not allowed for the URI (405) */
    ENVELOPE_ERR_NO_ROUTE = 7003,       /* Cloudflare: no route / unknown object id (404) */
    ENVELOPE_ERR_FORBIDDEN = 9109,      /* Cloudflare: unauthorized to access resource (403) */
    ENVELOPE_ERR_AUTH = 10000,          /* Cloudflare: authentication error (401) */
    ENVELOPE_ERR_INTERNAL = 10002,      /* Cloudflare: unexpected internal error (500) */
    ENVELOPE_ERR_UNKNOWN_FIELD = 10012, /* Cloudflare: unknown field in request JSON */
    ENVELOPE_ERR_FILE_MANAGED = 11150,  /* prism: the app comes from the node config file */
    ENVELOPE_ERR_ZONE_MISMATCH = 16001, /* Cloudflare: dns.name is not in this zone */
};

struct envelope_page {
    size_t page, per_page, count, total_count, total_pages;
};

/* {"success":true,"errors":[],"messages":[],"result":<result>}; steals <result>
 * (NULL means JSON null). Returns NULL only when out of memory. */
json_t *envelope_ok(json_t *result);
/* The same with "result_info" (<info>) for lists; steals <result>. */
json_t *envelope_list(json_t *result, const struct envelope_page *info);
/* Replaces every byte of <s> that is not part of a valid UTF-8 sequence with '?'
 * (in place, so the length stays). */
void envelope_utf8_scrub(char *s);

/* {"success":false,"errors":[{"code":<code>,"message":...}],"messages":[],"result":null}
 * The message is scrubbed to valid UTF-8. */
json_t *envelope_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
