/* fuzz/fuzz_api_request.c: api_handle() on arbitrary requests, without HTTP.
 *
 * The API must answer every request with Cloudflare's envelope and never with a
 * 5xx for bad input (issue 3): bodies that are not JSON, JSON of the wrong shape,
 * wrong types, unknown fields, invalid UTF-8, odd paths, methods and query
 * arguments. The store is SQLite in memory, with one zone and one app made at the
 * start; the data plane is a fake that accepts every apply, so nothing but bad
 * input reaches the handlers. Everything is rebuilt every REBUILD_EVERY inputs,
 * and whenever an input deleted the fixed zone, so the store stays small.
 *
 * Input layout (missing bytes read as zero):
 *   0      method: GET, POST, PUT, DELETE, PATCH, or (else) "BREW"
 *   1      path: bits 0-2 pick a template (zones, a zone, apps, an app, tokens
 *          verify, accounts, an unknown id, raw), bit 3 drops the Authorization
 *   2      query: how many "key=value" arguments to cut from the text (0-7)
 *   3..    text: query arguments, then (raw paths) the path, up to a NUL; the rest
 *          is the body */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/http.h"
#include "core/log.h"
#include "proxy/app.h"
#include "store/store.h"

#define TOKEN "tok_0123456789abcdefghijklmnopqrstuvwxyzABCD"
#define REBUILD_EVERY 256
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* for -Wmissing-prototypes */

static struct store *store;
static struct api *api;
static char zone_id[40], app_id[40], zone_path[128];
static unsigned runs;

static int accept_all(void *ctx, struct snap_app *const *apps, size_t n, char *err, size_t errlen)
{
    (void)ctx, (void)apps, (void)n, (void)err, (void)errlen;
    return 0;
}

/* Sends one request; checks the envelope; returns the status and, if <out>, the
 * answer (else it is freed). */
static unsigned call(const char *method, const char *path, struct http_req *req, json_t **out)
{
    struct http_resp resp = {0};
    json_t *errors;

    req->method = method;
    req->path = path;
    api_handle(api, req, &resp);
    CHECK(resp.body || resp.text);
    if (resp.text) { /* /metrics and the like: text, never an error */
        CHECK(resp.status == 200);
        free(resp.text);
        json_decref(resp.body);
        return resp.status;
    }
    CHECK(resp.status >= 200 && resp.status < 500);
    CHECK(json_is_boolean(json_object_get(resp.body, "success")));
    CHECK(json_is_array(json_object_get(resp.body, "messages")));
    CHECK(json_object_get(resp.body, "result"));
    errors = json_object_get(resp.body, "errors");
    CHECK(json_is_array(errors));
    CHECK(json_is_true(json_object_get(resp.body, "success")) == (resp.status < 300));
    if (resp.status >= 300) { /* every error has a code and a message */
        json_t *e = json_array_get(errors, 0);

        CHECK(json_is_integer(json_object_get(e, "code")));
        CHECK(json_string_length(json_object_get(e, "message")) > 0);
    }
    if (out)
        *out = resp.body;
    else
        json_decref(resp.body);
    return resp.status;
}

/* POSTs <body> to <path> and copies the new object's id into <id>. */
static void create(const char *path, const char *body, char *id, size_t len)
{
    struct http_req req = {
        .authorization = "Bearer " TOKEN, .body = body, .body_len = strlen(body)};
    json_t *r = NULL;

    CHECK(call("POST", path, &req, &r) == 200);
    snprintf(id, len, "%s", json_string_value(json_object_get(json_object_get(r, "result"), "id")));
    json_decref(r);
}

static void teardown(void)
{
    api_free(api);
    store_close(store);
    api = NULL;
    store = NULL;
}

static void build(void)
{
    struct api_hooks hooks = {.apply = accept_all};
    char err[256], where[64], path[160];

    log_set_level(LOG_ERROR);
    store = store_open(":memory:", err, sizeof(err));
    CHECK(store);
    api = api_new(store, &hooks, APP_F_UDP_BUILT, err, sizeof(err));
    CHECK(api);
    CHECK(api_bootstrap_token(api, TOKEN, "/nonexistent", where, sizeof(where), err, sizeof(err)) ==
          0);
    create("/client/v4/zones", "{\"name\":\"example.com\"}", zone_id, sizeof(zone_id));
    snprintf(zone_path, sizeof(zone_path), "/client/v4/zones/%s", zone_id);
    snprintf(path, sizeof(path), "%s/spectrum/apps", zone_path);
    create(path,
           "{\"protocol\":\"tcp/22\",\"dns\":{\"type\":\"CNAME\",\"name\":\"ssh.example.com\"},"
           "\"origin_direct\":[\"tcp://127.0.0.1:22\"]}",
           app_id, sizeof(app_id));
}

/* True while the fixed zone is still there (an input may have deleted it). */
static bool zone_exists(void)
{
    struct http_req req = {.authorization = "Bearer " TOKEN, .body = "", .body_len = 0};

    return call("GET", zone_path, &req, NULL) == 200;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "BREW"};
    uint8_t head[3] = {0, 0, 0};
    struct http_req req = {0};
    char *text, *p, *end, path[512];
    size_t n_args;

    if (!api || ++runs % REBUILD_EVERY == 0) {
        if (api)
            teardown();
        build();
    }
    memcpy(head, data, size < 3 ? size : 3);
    text = malloc(size > 3 ? size - 3 + 1 : 1);
    CHECK(text);
    if (size > 3)
        memcpy(text, data + 3, size - 3);
    text[size > 3 ? size - 3 : 0] = '\0';
    end = text + (size > 3 ? size - 3 : 0);
    p = text;

    /* query arguments: "k=v" pieces cut at NULs */
    n_args = head[2] % 8;
    for (size_t i = 0; i < n_args && p < end && req.n_query < HTTP_MAX_QUERY; i++) {
        char *eq = strchr(p, '=');
        size_t len = strlen(p);

        req.query[req.n_query].key = p;
        req.query[req.n_query].value = "";
        if (eq) {
            *eq = '\0';
            req.query[req.n_query].value = eq + 1;
        }
        req.n_query++;
        p += len + 1;
    }
    if (p > end)
        p = end;

    switch (head[1] & 7) {
    case 0:
        snprintf(path, sizeof(path), "/client/v4/zones");
        break;
    case 1:
        snprintf(path, sizeof(path), "%s", zone_path);
        break;
    case 2:
        snprintf(path, sizeof(path), "%s/spectrum/apps", zone_path);
        break;
    case 3:
        snprintf(path, sizeof(path), "%s/spectrum/apps/%s", zone_path, app_id);
        break;
    case 4:
        snprintf(path, sizeof(path), "/client/v4/user/tokens/verify");
        break;
    case 5:
        snprintf(path, sizeof(path), "/client/v4/accounts");
        break;
    case 6:
        snprintf(path, sizeof(path), "%s/spectrum/apps/0123456789abcdef0123456789abcdef",
                 zone_path);
        break;
    default: { /* a raw path, up to the next NUL */
        size_t len = strlen(p);

        snprintf(path, sizeof(path), "%.*s", (int)(len < sizeof(path) - 1 ? len : sizeof(path) - 1),
                 p);
        p += len + (p + len < end ? 1 : 0);
        break;
    }
    }
    if (!(head[1] & 8))
        req.authorization = "Bearer " TOKEN;
    req.body = p;
    req.body_len = (size_t)(end - p);
    call(methods[head[0] % 6], path, &req, NULL);
    free(text);
    if (!zone_exists()) {
        teardown();
        build();
    }
    return 0;
}
