/* src/api/api.c: the API's state and request dispatch.
 *
 * A request goes: router (404 code 7003 for an unknown path, 405 code 7001 for a
 * known path with another method) -> authentication (401 code 10000 for a
 * missing, malformed or unknown token) -> permission of the route (403 code
 * 9109) -> the handler, which parses the body, checks the zone (404 / 403 when
 * the token is limited to other zones) and answers. Every answer is a v4
 * envelope with a real HTTP status; bad input is a 4xx, never a 500.
 *
 * State: the account, the zones and the API apps live in memory (arrays in
 * creation order) and in SQLite. The memory copy is what requests read; a write
 * goes data plane first (control_apply() through the apply hook), then SQLite in
 * one transaction, then memory. If SQLite fails after the data plane took the
 * change, the previous app list is applied again and the answer is 500, so the
 * store and the data plane never disagree for longer than the request.
 *
 * Tokens are not cached: each request looks its hash up in SQLite, so a token
 * made by `prism token create` while serve runs works at once. */
#include "api/api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/bug.h"
#include "core/log.h"

#define ACCOUNT_NAME "prism"

enum route_id {
    R_HEALTHZ,
    R_METRICS,
    R_VERIFY,
    R_ACCOUNTS,
    R_ACCOUNT,
    R_ZONES_GET,
    R_ZONES_POST,
    R_ZONE_GET,
    R_ZONE_DELETE,
    R_APPS_GET,
    R_APPS_POST,
    R_APP_GET,
    R_APP_PUT,
    R_APP_DELETE,
    R__COUNT,
};

static const struct router_route routes[R__COUNT] = {
    [R_HEALTHZ] = {"GET", "healthz"},
    [R_METRICS] = {"GET", "metrics"},
    [R_VERIFY] = {"GET", "client/v4/user/tokens/verify"},
    [R_ACCOUNTS] = {"GET", "client/v4/accounts"},
    [R_ACCOUNT] = {"GET", "client/v4/accounts/*"},
    [R_ZONES_GET] = {"GET", "client/v4/zones"},
    [R_ZONES_POST] = {"POST", "client/v4/zones"},
    [R_ZONE_GET] = {"GET", "client/v4/zones/*"},
    [R_ZONE_DELETE] = {"DELETE", "client/v4/zones/*"},
    [R_APPS_GET] = {"GET", "client/v4/zones/*/spectrum/apps"},
    [R_APPS_POST] = {"POST", "client/v4/zones/*/spectrum/apps"},
    [R_APP_GET] = {"GET", "client/v4/zones/*/spectrum/apps/*"},
    [R_APP_PUT] = {"PUT", "client/v4/zones/*/spectrum/apps/*"},
    [R_APP_DELETE] = {"DELETE", "client/v4/zones/*/spectrum/apps/*"},
};

static void metrics(struct api_call *c);

#define PUBLIC 0x80000000u /* no token needed */
#define ANY_TOKEN 0u       /* any valid token */

static const struct {
    void (*fn)(struct api_call *c);
    unsigned perm;
} handlers[R__COUNT] = {
    [R_HEALTHZ] = {api__healthz, PUBLIC},
    [R_METRICS] = {metrics, PUBLIC},
    [R_VERIFY] = {api__token_verify, ANY_TOKEN},
    [R_ACCOUNTS] = {api__accounts_list, ANY_TOKEN},
    [R_ACCOUNT] = {api__account_get, ANY_TOKEN},
    [R_ZONES_GET] = {api__zones_list, AUTH_ZONE_READ},
    [R_ZONES_POST] = {api__zone_create, AUTH_ZONE_WRITE},
    [R_ZONE_GET] = {api__zone_get, AUTH_ZONE_READ},
    [R_ZONE_DELETE] = {api__zone_delete, AUTH_ZONE_WRITE},
    [R_APPS_GET] = {api__apps_list, AUTH_ZONE_READ},
    [R_APPS_POST] = {api__app_create, AUTH_ZONE_SETTINGS_WRITE},
    [R_APP_GET] = {api__app_get, AUTH_ZONE_READ},
    [R_APP_PUT] = {api__app_update, AUTH_ZONE_SETTINGS_WRITE},
    [R_APP_DELETE] = {api__app_delete, AUTH_ZONE_SETTINGS_WRITE},
};

void api__fail(struct api_call *c, unsigned status, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_decref(c->resp->body);
    c->resp->status = status;
    c->resp->body = envelope_error(code, "%s", msg);
}

void api__ok(struct api_call *c, unsigned status, json_t *result)
{
    json_decref(c->resp->body);
    c->resp->status = status;
    c->resp->body = envelope_ok(result);
}

json_t *api__body_object(struct api_call *c)
{
    json_error_t jerr;
    json_t *v;

    if (c->req->body_len == 0) {
        api__fail(c, 400, ENVELOPE_ERR_MALFORMED_JSON,
                  "Malformed JSON in request body: the body is empty; send a JSON object");
        return NULL;
    }
    v = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        api__fail(c, 400, ENVELOPE_ERR_MALFORMED_JSON,
                  "Malformed JSON in request body: %s (line %d, column %d)", jerr.text, jerr.line,
                  jerr.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        api__fail(c, 400, ENVELOPE_ERR_MALFORMED_JSON,
                  "Malformed JSON in request body: the body must be a JSON object");
        return NULL;
    }
    return v;
}

/* Parses a decimal in [lo, hi] with nothing else around it. */
static bool parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    size_t v = 0;

    if (!s[0] || strlen(s) > 9)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (size_t)(*p - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The single value of query argument <key>, or NULL; answers 400 (and sets
 * *<bad>) when it is given more than once. */
static const char *single_query(struct api_call *c, const char *key, bool *bad)
{
    int n;
    const char *v = http_query_get(c->req, key, &n);

    if (n > 1) {
        api__fail(c, 400, ENVELOPE_ERR_INVALID_QUERY, "%s: given %d times; give it once", key, n);
        *bad = true;
    }
    return v;
}

int api__page_params(struct api_call *c, const char *const *orders, size_t n_orders, int def,
                     struct api_page *out)
{
    const char *page, *per_page, *order, *dir;
    bool bad = false;

    out->page = 1;
    out->per_page = API_PER_PAGE_DEFAULT;
    out->order = def;
    out->is_desc = false;
    page = single_query(c, "page", &bad);
    per_page = single_query(c, "per_page", &bad);
    order = single_query(c, "order", &bad);
    dir = single_query(c, "direction", &bad);
    if (bad)
        return -EINVAL;
    if (page && !parse_size(page, 1, 100000000, &out->page)) {
        api__fail(c, 400, ENVELOPE_ERR_INVALID_QUERY, "page: must be an integer of 1 or more");
        return -EINVAL;
    }
    if (per_page && !parse_size(per_page, 1, API_PER_PAGE_MAX, &out->per_page)) {
        api__fail(c, 400, ENVELOPE_ERR_INVALID_QUERY, "per_page: must be an integer from 1 to %d",
                  API_PER_PAGE_MAX);
        return -EINVAL;
    }
    if (order) {
        size_t i;
        char names[256] = "";
        size_t used = 0;

        for (i = 0; i < n_orders && strcmp(order, orders[i]) != 0; i++)
            ;
        if (i == n_orders) {
            for (size_t j = 0; j < n_orders && used < sizeof(names); j++)
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", j ? ", " : "",
                                         orders[j]);
            api__fail(c, 400, ENVELOPE_ERR_INVALID_QUERY, "order: must be one of %s", names);
            return -EINVAL;
        }
        out->order = (int)i;
    }
    if (dir) {
        if (strcmp(dir, "asc") != 0 && strcmp(dir, "desc") != 0) {
            api__fail(c, 400, ENVELOPE_ERR_INVALID_QUERY, "direction: must be asc or desc");
            return -EINVAL;
        }
        out->is_desc = strcmp(dir, "desc") == 0;
    }
    return 0;
}

void api__ok_page(struct api_call *c, json_t *const *items, size_t n, const struct api_page *p)
{
    struct envelope_page info = {.page = p->page, .per_page = p->per_page, .total_count = n};
    json_t *result = json_array();
    size_t start = (p->page - 1) * p->per_page;

    for (size_t i = start; result && i < n && i < start + p->per_page; i++)
        json_array_append(result, items[i]);
    info.count = result ? json_array_size(result) : 0;
    info.total_pages = (n + p->per_page - 1) / p->per_page;
    json_decref(c->resp->body);
    c->resp->status = 200;
    c->resp->body = envelope_list(result, &info);
}

/* Authenticates the call and checks <perm>. Returns 0, or -EACCES after answering. */
static int authenticate(struct api_call *c, unsigned perm)
{
    unsigned have = 0;
    char bad[80];
    int rc;

    rc = auth_lookup(c->api->store, c->req->authorization, &c->token);
    if (rc == -EINVAL || rc == -ENOENT) {
        api__fail(c, 401, ENVELOPE_ERR_AUTH, "Authentication error");
        return -EACCES;
    }
    if (rc < 0) {
        log_error("api: token lookup failed: %s", store_errmsg(c->api->store));
        api__fail(c, 500, ENVELOPE_ERR_INTERNAL, "internal error: the store failed");
        return -EACCES;
    }
    if (auth_perms_parse(c->token.permissions, &have, bad, sizeof(bad)) < 0)
        have = 0; /* a row written by a newer prism: only what we know counts */
    if ((have & perm) != perm) {
        char need[128];

        auth_perms_format(perm, need, sizeof(need));
        api__fail(c, 403, ENVELOPE_ERR_FORBIDDEN,
                  "Unauthorized to access requested resource: the token lacks the %s permission",
                  need);
        return -EACCES;
    }
    return 0;
}

void api_handle(void *ctx, const struct http_req *req, struct http_resp *resp)
{
    struct api *api = ctx;
    struct api_call c = {.api = api, .req = req, .resp = resp};
    enum router_result rr;
    unsigned perm;

    resp->status = 500;
    resp->body = NULL;
    rr = router_match(routes, R__COUNT, req->method, req->path, &c.m);
    if (rr == ROUTER_NO_ROUTE) {
        api__fail(&c, 404, ENVELOPE_ERR_NO_ROUTE, "No route for the URI");
        return;
    }
    if (rr == ROUTER_BAD_METHOD) {
        api__fail(&c, 405, ENVELOPE_ERR_METHOD, "Method %s not available for that URI.",
                  req->method);
        return;
    }
    if (req->has_too_many_query) {
        api__fail(&c, 400, ENVELOPE_ERR_INVALID_QUERY, "too many query arguments (at most %d)",
                  HTTP_MAX_QUERY);
        return;
    }
    perm = handlers[c.m.route].perm;
    if (perm != PUBLIC && authenticate(&c, perm) < 0)
        return;
    handlers[c.m.route].fn(&c);
    if (!resp->body && !resp->text)
        api__fail(&c, 500, ENVELOPE_ERR_INTERNAL, "internal error: out of memory");
}

void api__healthz(struct api_call *c)
{
    api__ok(c, 200, json_pack("{s:s}", "status", "ok"));
}

/* Prometheus text, no envelope (scrapers expect text/plain). */
static void metrics(struct api_call *c)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = NULL;

    if (!c->api->hooks.metrics) {
        api__fail(c, 404, ENVELOPE_ERR_NO_ROUTE, "No route for the URI");
        return;
    }
    for (int tries = 0; tries < 4 && n == 0; tries++, cap *= 4) {
        free(buf);
        buf = malloc(cap);
        if (!buf)
            return;
        n = c->api->hooks.metrics(c->api->hooks.ctx, buf, cap);
    }
    if (n == 0) {
        free(buf);
        return;
    }
    buf[n < cap ? n : cap - 1] = '\0';
    c->resp->status = 200;
    c->resp->text = buf;
    c->resp->content_type = "text/plain; version=0.0.4";
    json_decref(c->resp->body);
    c->resp->body = NULL;
}

size_t api_zone_count(const struct api *api)
{
    return api->n_zones;
}

const char *api_zone_name(const struct api *api, size_t i)
{
    return i < api->n_zones ? api->zones[i].name : "";
}

static int load_zone(void *ctx, const struct store_zone *z)
{
    struct api *api = ctx;

    if (api->n_zones == api->cap_zones) {
        size_t cap = api->cap_zones ? 2 * api->cap_zones : 16;
        struct store_zone *p = realloc(api->zones, cap * sizeof(*p));

        if (!p)
            return -ENOMEM;
        api->zones = p;
        api->cap_zones = cap;
    }
    api->zones[api->n_zones++] = *z;
    return 0;
}

/* The node's account: read, or created on the first start. */
static int load_account(struct api *api, char *err, size_t errlen)
{
    int rc = store_account_first(api->store, &api->account);

    if (rc == 0)
        return 0;
    if (rc != -ENOENT) {
        snprintf(err, errlen, "store: reading the account: %s", store_errmsg(api->store));
        return rc;
    }
    memset(&api->account, 0, sizeof(api->account));
    rc = ids_random_hex(api->account.id);
    if (rc < 0) {
        snprintf(err, errlen, "getrandom: %s", strerror(-rc));
        return rc;
    }
    snprintf(api->account.name, sizeof(api->account.name), "%s", ACCOUNT_NAME);
    ids_now(api->account.created_on);
    rc = store_account_insert(api->store, &api->account);
    if (rc < 0)
        snprintf(err, errlen, "store: creating the account: %s", store_errmsg(api->store));
    return rc;
}

struct api *api_new(struct store *store, const struct api_hooks *hooks, unsigned app_flags,
                    char *err, size_t errlen)
{
    struct api *api = calloc(1, sizeof(*api));
    int rc;

    if (!api) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    api->store = store;
    api->hooks = *hooks;
    api->app_flags = app_flags;
    if (load_account(api, err, errlen) < 0)
        goto fail;
    rc = store_zone_each(store, load_zone, api);
    if (rc < 0) {
        snprintf(err, errlen, "store: reading zones: %s",
                 rc == -ENOMEM ? "out of memory" : store_errmsg(store));
        goto fail;
    }
    if (api__apps_load(api, err, errlen) < 0)
        goto fail;
    return api;
fail:
    api_free(api);
    return NULL;
}

void api_free(struct api *api)
{
    if (!api)
        return;
    http_stop(api->http);
    api__apps_free(api);
    free(api->zones);
    free(api);
}

struct snap_app *const *api_apps(const struct api *api, size_t *n)
{
    *n = api->n_apps;
    return api->sas;
}

int api_listen(struct api *api, struct loop *loop, const struct sockaddr_storage *addr, char *err,
               size_t errlen)
{
    api->http = http_start(loop, addr, api_handle, api, err, errlen);
    return api->http ? 0 : -EADDRNOTAVAIL;
}
