/* src/api/api_zones.c: /client/v4/zones.
 *
 * A zone is a name (a DNS domain) and an id; Spectrum apps live under it and
 * their dns.name must be the zone name or a name under it. Zone objects carry
 * the fields Cloudflare returns that make sense here (status is always
 * "active": prism is authoritative for its app names, no delegation check).
 * Deleting a zone deletes its API apps too (they are taken off the data plane
 * first), as Cloudflare does; file-managed apps under it are untouched. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_internal.h"
#include "core/log.h"

static const char *const zone_orders[] = {"name", "status", "account.id", "account.name"};

struct store_zone *api__zone_find(struct api *api, const char *id)
{
    for (size_t i = 0; i < api->n_zones; i++) {
        if (strcmp(api->zones[i].id, id) == 0)
            return &api->zones[i];
    }
    return NULL;
}

struct store_zone *api__zone_for_call(struct api_call *c, const char *id)
{
    struct store_zone *z = api__zone_find(c->api, id);

    if (!z) {
        api__fail(c, 404, ENVELOPE_ERR_NO_ROUTE,
                  "Could not route to /zones/%.64s, perhaps your object identifier is invalid?",
                  id);
        return NULL;
    }
    if (!auth_zone_allowed(&c->token, z->id, z->name)) {
        api__fail(c, 403, ENVELOPE_ERR_FORBIDDEN,
                  "Unauthorized to access requested resource: the token is not valid for zone %s",
                  z->id);
        return NULL;
    }
    return z;
}

json_t *api__zone_json(const struct api *api, const struct store_zone *z)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:s, s:i, s:[], s:[], s:n, s:n, s:s, s:s, s:s,"
                     " s:{s:s, s:s}, s:{s:n, s:s, s:n}, s:[], s:{s:i}}",
                     "id", z->id, "name", z->name, "status", "active", "paused", 0, "type", "full",
                     "development_mode", 0, "name_servers", "original_name_servers",
                     "original_registrar", "original_dnshost", "created_on", z->created_on,
                     "modified_on", z->modified_on, "activated_on", z->created_on, "account", "id",
                     z->account_id, "name", api->account.name, "owner", "id", "type", "user",
                     "email", "permissions", "meta", "step", 2);
}

/* Normalizes a zone name into <out>: lower case, no trailing dot, at least two
 * labels of 1-63 letters, digits and inner hyphens, 253 characters at most. */
static bool zone_name_ok(const char *s, char out[STORE_NAME_MAX + 1])
{
    size_t n = strlen(s), label = 0, labels = 1;

    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > STORE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = (char)tolower((unsigned char)s[i]);

        if (ch == '.') {
            if (label == 0 || out[i - 1] == '-')
                return false;
            label = 0;
            labels++;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
            if ((ch == '-' && label == 0) || ++label > 63)
                return false;
        } else {
            return false;
        }
        out[i] = ch;
    }
    out[n] = '\0';
    return label > 0 && out[n - 1] != '-' && labels >= 2;
}

static int cmp_zone_name(const void *a, const void *b)
{
    const struct store_zone *x = *(const struct store_zone *const *)a;
    const struct store_zone *y = *(const struct store_zone *const *)b;

    return strcmp(x->name, y->name);
}

void api__zones_list(struct api_call *c)
{
    struct api *api = c->api;
    struct api_page p;
    const struct store_zone **sel;
    json_t **items;
    const char *name, *account_id;
    size_t n = 0;

    if (api__page_params(c, zone_orders, 4, 0, &p) < 0)
        return;
    name = http_query_get(c->req, "name", NULL);
    account_id = http_query_get(c->req, "account.id", NULL);
    sel = calloc(api->n_zones + 1, sizeof(*sel));
    items = calloc(api->n_zones + 1, sizeof(*items));
    if (!sel || !items)
        goto out;
    for (size_t i = 0; i < api->n_zones; i++) {
        const struct store_zone *z = &api->zones[i];
        char norm[STORE_NAME_MAX + 1];

        if (name && !(zone_name_ok(name, norm) && strcmp(norm, z->name) == 0))
            continue;
        if (account_id && strcmp(account_id, z->account_id) != 0)
            continue;
        if (!auth_zone_allowed(&c->token, z->id, z->name))
            continue;
        sel[n++] = z;
    }
    if (p.order == 0)
        qsort(sel, n, sizeof(*sel), cmp_zone_name);
    for (size_t i = 0; i < n; i++) {
        items[i] = api__zone_json(api, sel[p.is_desc ? n - 1 - i : i]);
        if (!items[i])
            goto out_items;
    }
    api__ok_page(c, items, n, &p);
out_items:
    for (size_t i = 0; i < n; i++)
        json_decref(items[i]);
out:
    free(sel);
    free(items);
}

void api__zone_get(struct api_call *c)
{
    struct store_zone *z = api__zone_for_call(c, c->m.params[0]);

    if (z)
        api__ok(c, 200, api__zone_json(c->api, z));
}

/* Reads the zone-create body into <z>. Returns 0, or -EINVAL after answering. */
static int parse_zone_body(struct api_call *c, json_t *body, struct store_zone *z)
{
    const char *key;
    json_t *v, *name = NULL;

    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "name") == 0) {
            name = v;
        } else if (strcmp(key, "account") == 0) {
            json_t *id;

            if (json_is_null(v))
                continue;
            if (!json_is_object(v) || json_object_size(v) != (json_object_get(v, "id") ? 1 : 0)) {
                api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD,
                          "account: must be an object with only \"id\"");
                return -EINVAL;
            }
            id = json_object_get(v, "id");
            if (id && !json_is_string(id)) {
                api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD, "account.id: must be a string");
                return -EINVAL;
            }
            if (id && strcmp(json_string_value(id), c->api->account.id) != 0) {
                api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD,
                          "account.id: no such account (this node has account %s)",
                          c->api->account.id);
                return -EINVAL;
            }
        } else if (strcmp(key, "type") == 0) {
            if (!json_is_null(v) &&
                !(json_is_string(v) && strcmp(json_string_value(v), "full") == 0)) {
                api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD,
                          "type: must be \"full\" (the only zone type prism has)");
                return -EINVAL;
            }
        } else if (strcmp(key, "jump_start") == 0) {
            if (!json_is_boolean(v) && !json_is_null(v)) {
                api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD, "jump_start: must be true or false");
                return -EINVAL;
            }
        } else {
            api__fail(c, 400, ENVELOPE_ERR_UNKNOWN_FIELD, "Unknown field in request JSON: %.64s",
                      key);
            return -EINVAL;
        }
    }
    if (!name) {
        api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD, "name: is required");
        return -EINVAL;
    }
    if (!json_is_string(name)) {
        api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD, "name: must be a string");
        return -EINVAL;
    }
    if (strlen(json_string_value(name)) != json_string_length(name) ||
        !zone_name_ok(json_string_value(name), z->name)) {
        api__fail(c, 400, ENVELOPE_ERR_INVALID_FIELD,
                  "name: must be a domain name such as example.com (labels of letters, digits"
                  " and hyphens, at least two labels, 253 characters at most)");
        return -EINVAL;
    }
    return 0;
}

void api__zone_create(struct api_call *c)
{
    struct api *api = c->api;
    struct store_zone z;
    json_t *body;
    int rc;

    if (c->token.zones[0]) {
        api__fail(c, 403, ENVELOPE_ERR_FORBIDDEN,
                  "Unauthorized to access requested resource: a token limited to zones cannot"
                  " create zones");
        return;
    }
    body = api__body_object(c);
    if (!body)
        return;
    memset(&z, 0, sizeof(z));
    rc = parse_zone_body(c, body, &z);
    json_decref(body);
    if (rc < 0)
        return;
    for (size_t i = 0; i < api->n_zones; i++) {
        if (strcmp(api->zones[i].name, z.name) == 0) {
            api__fail(c, 400, ENVELOPE_ERR_ZONE_EXISTS, "%s already exists", z.name);
            return;
        }
    }
    if (api->n_zones == api->cap_zones) {
        size_t cap = api->cap_zones ? 2 * api->cap_zones : 16;
        struct store_zone *p = realloc(api->zones, cap * sizeof(*p));

        if (!p)
            return; /* answered 500 by api_handle() */
        api->zones = p;
        api->cap_zones = cap;
    }
    if (ids_random_hex(z.id) < 0)
        return;
    snprintf(z.account_id, sizeof(z.account_id), "%s", api->account.id);
    ids_now(z.created_on);
    snprintf(z.modified_on, sizeof(z.modified_on), "%s", z.created_on);
    rc = store_zone_insert(api->store, &z);
    if (rc < 0) {
        log_error("api: storing zone %s: %s", z.name, store_errmsg(api->store));
        api__fail(c, 500, ENVELOPE_ERR_INTERNAL, "internal error: the store failed");
        return;
    }
    api->zones[api->n_zones++] = z;
    log_info("api: zone %s created (%s, token %s)", z.name, z.id, c->token.id);
    api__ok(c, 200, api__zone_json(api, &z));
}

static int write_zone_delete(struct api_call *c, void *ctx)
{
    const char *id = ctx;
    int rc = store_begin(c->api->store);

    if (rc == 0)
        rc = store_zone_delete(c->api->store, id);
    if (rc == 0)
        rc = store_commit(c->api->store);
    else
        store_rollback(c->api->store);
    return rc;
}

void api__zone_delete(struct api_call *c)
{
    struct api *api = c->api;
    struct store_zone *z = api__zone_for_call(c, c->m.params[0]);
    char id[IDS_HEX_LEN + 1], name[STORE_NAME_MAX + 1];
    size_t dropped = 0, i;

    if (!z)
        return;
    snprintf(id, sizeof(id), "%s", z->id);
    snprintf(name, sizeof(name), "%s", z->name);
    if (api__apps_change_zone_drop(c, id, write_zone_delete, id, &dropped) < 0)
        return;
    for (i = 0; i < api->n_zones && strcmp(api->zones[i].id, id) != 0; i++)
        ;
    if (i < api->n_zones) {
        memmove(&api->zones[i], &api->zones[i + 1], (api->n_zones - i - 1) * sizeof(*api->zones));
        api->n_zones--;
    }
    log_info("api: zone %s deleted (%s) with %zu apps (token %s)", name, id, dropped, c->token.id);
    api__ok(c, 200, json_pack("{s:s}", "id", id));
}
