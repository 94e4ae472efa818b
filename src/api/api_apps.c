/* src/api/api_apps.c: /client/v4/zones/{zone_id}/spectrum/apps.
 *
 * An app body is validated and compiled by app_from_json(APP_F_API), the same
 * code that reads the node configuration file, so both accept the same objects
 * with the same Cloudflare error codes (proxy/app.h). The API then adds what is
 * its own: the id (32 random hex), created_on/modified_on (RFC 3339 with
 * microseconds) and the check that dns.name lies in the zone (16001).
 *
 * A change is applied to the data plane first, with the complete new list of
 * API apps (so the listeners of a new app are open, and a port conflict with any
 * other app is found, before we answer), then written to SQLite in one
 * transaction, then made the in-memory list. See api.c for the failure rules.
 *
 * Apps from the node configuration file are listed in the zone whose name covers
 * their dns.name (the longest such zone), with the prism-only field
 * "file_managed": true; PUT and DELETE on them answer 400 (code 11150).
 *
 * Lists are sorted by <order> (default dns) then id, so pages are stable, and
 * sliced in memory: the SDK's auto-pagination asks for page+1 until a page comes
 * back empty, so a page past the end answers 200 with result []. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/log.h"
#include "proxy/app.h"

static const char *const app_orders[] = {"protocol", "app_id", "created_on", "modified_on", "dns"};
enum { O_PROTOCOL, O_APP_ID, O_CREATED, O_MODIFIED, O_DNS };

static const char *json_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "";
}

/* Whether <name> is <zone> or a name under it. */
static bool name_in_zone(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);

    if (n == z)
        return strcmp(name, zone) == 0;
    return n > z && name[n - z - 1] == '.' && strcmp(name + n - z, zone) == 0;
}

/* The zone a file app belongs to: the longest zone name covering its dns.name. */
static const struct store_zone *zone_of_name(const struct api *api, const char *name)
{
    const struct store_zone *best = NULL;

    for (size_t i = 0; i < api->n_zones; i++) {
        const struct store_zone *z = &api->zones[i];
        if (name_in_zone(name, z->name) && (!best || strlen(z->name) > strlen(best->name)))
            best = z;
    }
    return best;
}

/* Puts id first and the timestamps last in app->json, and sets app->id. */
static int finish_app(struct app *app, const char *id, const char *created, const char *modified)
{
    json_t *o = json_pack("{s:s}", "id", id);

    if (!o || json_object_update(o, app->json) != 0 ||
        json_object_set_new(o, "created_on", json_string(created)) != 0 ||
        json_object_set_new(o, "modified_on", json_string(modified)) != 0) {
        json_decref(o);
        return -ENOMEM;
    }
    json_decref(app->json);
    app->json = o;
    snprintf(app->id, sizeof(app->id), "%s", id);
    return 0;
}

static struct snap_app *const *file_apps(struct api *api, size_t *n)
{
    *n = 0;
    if (!api->hooks.file_apps)
        return NULL;
    return api->hooks.file_apps(api->hooks.ctx, n);
}

/* Replaces the API apps with <next> (<n> entries, each holding one reference,
 * owned by this call from here on): data plane, then <write> (may be NULL),
 * then memory. Returns 0, or -errno after answering. */
static int commit_apps(struct api_call *c, struct api_app *next, size_t n, api_write_fn write,
                       void *ctx)
{
    struct api *api = c->api;
    struct snap_app **sas = calloc(n ? n : 1, sizeof(*sas));
    char err[512] = "";
    int rc;

    if (!sas) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        sas[i] = next[i].sa;
    rc = api->hooks.apply(api->hooks.ctx, sas, n, err, sizeof(err));
    if (rc == -EEXIST || rc == -EADDRINUSE) {
        api__fail(c, 400, APP_ERR_PORT_CONFLICT, "%s", err);
        goto fail;
    }
    if (rc == -EADDRNOTAVAIL || rc == -EACCES || rc == -EINVAL) {
        api__fail(c, 400, APP_ERR_EDGE_IPS, "%s", err);
        goto fail;
    }
    if (rc < 0) {
        log_error("api: applying apps failed: %s", err);
        api__fail(c, 500, ENVELOPE_ERR_INTERNAL, "internal error: %s", err);
        goto fail;
    }
    rc = write ? write(c, ctx) : 0;
    if (rc < 0) {
        log_error("api: the store failed (%s); putting the previous apps back",
                  store_errmsg(api->store));
        if (api->hooks.apply(api->hooks.ctx, api->sas, api->n_apps, err, sizeof(err)) < 0)
            log_error("api: could not put the previous apps back: %s", err);
        api__fail(c, 500, ENVELOPE_ERR_INTERNAL, "internal error: the store failed");
        goto fail;
    }
    for (size_t i = 0; i < api->n_apps; i++)
        snap_app_unref(api->apps[i].sa);
    free(api->apps);
    free(api->sas);
    api->apps = next;
    api->n_apps = api->cap_apps = n;
    api->sas = sas;
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        snap_app_unref(next[i].sa);
    free(next);
    free(sas);
    return rc < 0 ? rc : -EIO;
}

/* A copy of the current list with room for <extra> more, each entry referenced. */
static struct api_app *copy_apps(const struct api *api, size_t extra)
{
    struct api_app *next = calloc(api->n_apps + extra + 1, sizeof(*next));

    if (!next)
        return NULL;
    for (size_t i = 0; i < api->n_apps; i++) {
        next[i] = api->apps[i];
        snap_app_ref(next[i].sa);
    }
    return next;
}

struct app_write {
    const struct api_app *app; /* to put, or NULL */
    const char *delete_id;     /* to delete, or NULL */
};

static int write_app(struct api_call *c, void *ctx)
{
    const struct app_write *w = ctx;
    struct store *s = c->api->store;
    char *body = NULL;
    int rc = store_begin(s);

    if (rc == 0 && w->app) {
        const json_t *j = w->app->sa->app->json;
        struct store_app row;

        memset(&row, 0, sizeof(row));
        snprintf(row.id, sizeof(row.id), "%s", w->app->id);
        snprintf(row.zone_id, sizeof(row.zone_id), "%s", w->app->zone_id);
        snprintf(row.created_on, sizeof(row.created_on), "%s", json_str(j, "created_on"));
        snprintf(row.modified_on, sizeof(row.modified_on), "%s", json_str(j, "modified_on"));
        body = json_dumps(j, JSON_COMPACT);
        row.body = body;
        rc = body ? store_app_put(s, &row) : -ENOMEM;
    }
    if (rc == 0 && w->delete_id)
        rc = store_app_delete(s, w->delete_id);
    free(body);
    if (rc == 0)
        return store_commit(s);
    store_rollback(s);
    return rc;
}

/* Validates <body> for zone <z> into a new snap_app with <id> and timestamps.
 * Returns NULL after answering. */
static struct snap_app *build_app(struct api_call *c, const json_t *body,
                                  const struct store_zone *z, const char *id, const char *created,
                                  const char *modified)
{
    struct app_error aerr;
    struct app *app;
    struct snap_app *sa;

    memset(&aerr, 0, sizeof(aerr));
    app = app_from_json(body, APP_F_API | c->api->app_flags, &aerr);
    if (!app) {
        if (aerr.field[0] && strncmp(aerr.message, aerr.field, strlen(aerr.field)) != 0)
            api__fail(c, 400, aerr.code, "%s: %s", aerr.field, aerr.message);
        else
            api__fail(c, 400, aerr.code, "%s", aerr.message);
        return NULL;
    }
    if (!name_in_zone(app->dns_name, z->name)) {
        api__fail(c, 400, ENVELOPE_ERR_ZONE_MISMATCH,
                  "dns.name: %s is not in zone %s; use %s or a name under it", app->dns_name,
                  z->name, z->name);
        app_free(app);
        return NULL;
    }
    if (finish_app(app, id, created, modified) < 0) {
        app_free(app);
        return NULL;
    }
    sa = snap_app_new(app);
    return sa; /* NULL: out of memory, answered 500 by api_handle() */
}

/* Index of API app <id> in zone <zone_id>, or -1. */
static long find_app(const struct api *api, const char *zone_id, const char *id)
{
    for (size_t i = 0; i < api->n_apps; i++) {
        if (strcmp(api->apps[i].id, id) == 0 && strcmp(api->apps[i].zone_id, zone_id) == 0)
            return (long)i;
    }
    return -1;
}

/* The file app <id> listed in zone <z>, or NULL. */
static const struct app *find_file_app(struct api *api, const struct store_zone *z, const char *id)
{
    size_t n;
    struct snap_app *const *fa = file_apps(api, &n);

    for (size_t i = 0; i < n; i++) {
        const struct app *a = fa[i]->app;
        if (strcmp(a->id, id) == 0 && zone_of_name(api, a->dns_name) == z)
            return a;
    }
    return NULL;
}

static json_t *file_app_json(const struct app *a)
{
    json_t *o = json_copy(a->json);

    if (o)
        json_object_set_new(o, "file_managed", json_true());
    return o;
}

static void not_found(struct api_call *c)
{
    api__fail(c, 404, ENVELOPE_ERR_NO_ROUTE, "app %.64s not found in zone %s", c->m.params[1],
              c->m.params[0]);
}

/* ---- list */

struct row {
    json_t *json; /* counted */
    const char *id, *protocol, *created, *modified, *dns;
};

struct sort {
    int order;
    bool is_desc;
};

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const struct row *x = a, *y = b;
    const struct sort *s = arg;
    int r = 0;

    switch (s->order) {
    case O_PROTOCOL:
        r = strcmp(x->protocol, y->protocol);
        break;
    case O_CREATED:
        r = strcmp(x->created, y->created);
        break;
    case O_MODIFIED:
        r = strcmp(x->modified, y->modified);
        break;
    case O_DNS:
        r = strcmp(x->dns, y->dns);
        break;
    default:
        break;
    }
    if (r == 0)
        r = strcmp(x->id, y->id);
    return s->is_desc ? -r : r;
}

static void fill_row(struct row *r, json_t *j, const struct app *a)
{
    r->json = j;
    r->id = a->id;
    r->protocol = json_str(j, "protocol");
    r->created = json_str(j, "created_on");
    r->modified = json_str(j, "modified_on");
    r->dns = a->dns_name;
}

void api__apps_list(struct api_call *c)
{
    struct api *api = c->api;
    const struct store_zone *z = api__zone_for_call(c, c->m.params[0]);
    struct snap_app *const *fa;
    struct api_page p;
    struct row *rows;
    json_t **items;
    size_t n_file, n = 0;

    if (!z || api__page_params(c, app_orders, 5, O_DNS, &p) < 0)
        return;
    fa = file_apps(api, &n_file);
    rows = calloc(api->n_apps + n_file + 1, sizeof(*rows));
    items = calloc(api->n_apps + n_file + 1, sizeof(*items));
    if (!rows || !items)
        goto out;
    for (size_t i = 0; i < api->n_apps; i++) {
        if (strcmp(api->apps[i].zone_id, z->id) != 0)
            continue;
        fill_row(&rows[n++], json_incref(api->apps[i].sa->app->json), api->apps[i].sa->app);
    }
    for (size_t i = 0; i < n_file; i++) {
        const struct app *a = fa[i]->app;
        json_t *j;

        if (zone_of_name(api, a->dns_name) != z)
            continue;
        j = file_app_json(a);
        if (!j)
            goto out;
        fill_row(&rows[n++], j, a);
    }
    qsort_r(rows, n, sizeof(*rows), cmp_rows, &(struct sort){p.order, p.is_desc});
    for (size_t i = 0; i < n; i++)
        items[i] = rows[i].json;
    api__ok_page(c, items, n, &p);
out:
    for (size_t i = 0; rows && i < n; i++)
        json_decref(rows[i].json);
    free(rows);
    free(items);
}

/* ---- one app */

void api__app_get(struct api_call *c)
{
    struct api *api = c->api;
    const struct store_zone *z = api__zone_for_call(c, c->m.params[0]);
    const struct app *fa;
    long i;

    if (!z)
        return;
    i = find_app(api, z->id, c->m.params[1]);
    if (i >= 0) {
        api__ok(c, 200, json_incref(api->apps[i].sa->app->json));
        return;
    }
    fa = find_file_app(api, z, c->m.params[1]);
    if (fa)
        api__ok(c, 200, file_app_json(fa));
    else
        not_found(c);
}

void api__app_create(struct api_call *c)
{
    struct api *api = c->api;
    const struct store_zone *z = api__zone_for_call(c, c->m.params[0]);
    struct api_app *next, *mine;
    struct app_write w = {0};
    char id[IDS_HEX_LEN + 1], now[IDS_TIME_MAX];
    json_t *body;
    struct snap_app *sa;

    if (!z)
        return;
    body = api__body_object(c);
    if (!body)
        return;
    if (ids_random_hex(id) < 0) {
        json_decref(body);
        return;
    }
    ids_now(now);
    sa = build_app(c, body, z, id, now, now);
    json_decref(body);
    if (!sa)
        return;
    next = copy_apps(api, 1);
    if (!next) {
        snap_app_unref(sa);
        return;
    }
    mine = &next[api->n_apps];
    snprintf(mine->id, sizeof(mine->id), "%s", id);
    snprintf(mine->zone_id, sizeof(mine->zone_id), "%s", z->id);
    mine->sa = sa;
    w.app = mine;
    if (commit_apps(c, next, api->n_apps + 1, write_app, &w) < 0)
        return;
    log_info("api: app %s created in zone %s (%s, token %s)", id, z->name, sa->app->dns_name,
             c->token.id);
    api__ok(c, 200, json_incref(sa->app->json));
}

/* For PUT and DELETE: the API app index, or -1 after answering 400 (file-managed)
 * or 404. */
static long writable_app(struct api_call *c, const struct store_zone *z)
{
    long i = find_app(c->api, z->id, c->m.params[1]);

    if (i >= 0)
        return i;
    if (find_file_app(c->api, z, c->m.params[1]))
        api__fail(c, 400, ENVELOPE_ERR_FILE_MANAGED,
                  "app %s is file-managed: it comes from the node configuration file; change it"
                  " there and reload (SIGHUP)",
                  c->m.params[1]);
    else
        not_found(c);
    return -1;
}

void api__app_update(struct api_call *c)
{
    struct api *api = c->api;
    const struct store_zone *z = api__zone_for_call(c, c->m.params[0]);
    struct api_app *next;
    struct app_write w = {0};
    char id[IDS_HEX_LEN + 1], created[IDS_TIME_MAX], now[IDS_TIME_MAX];
    struct snap_app *sa;
    json_t *body;
    long i;

    if (!z || (i = writable_app(c, z)) < 0)
        return;
    body = api__body_object(c);
    if (!body)
        return;
    snprintf(id, sizeof(id), "%s", api->apps[i].id);
    snprintf(created, sizeof(created), "%s", json_str(api->apps[i].sa->app->json, "created_on"));
    ids_now(now);
    sa = build_app(c, body, z, id, created, now);
    json_decref(body);
    if (!sa)
        return;
    next = copy_apps(api, 0);
    if (!next) {
        snap_app_unref(sa);
        return;
    }
    snap_app_unref(next[i].sa);
    next[i].sa = sa;
    w.app = &next[i];
    if (commit_apps(c, next, api->n_apps, write_app, &w) < 0)
        return;
    log_info("api: app %s updated in zone %s (token %s)", id, z->name, c->token.id);
    api__ok(c, 200, json_incref(sa->app->json));
}

void api__app_delete(struct api_call *c)
{
    struct api *api = c->api;
    const struct store_zone *z = api__zone_for_call(c, c->m.params[0]);
    struct api_app *next;
    struct app_write w = {0};
    char id[IDS_HEX_LEN + 1];
    long i;

    if (!z || (i = writable_app(c, z)) < 0)
        return;
    snprintf(id, sizeof(id), "%s", api->apps[i].id);
    next = copy_apps(api, 0);
    if (!next)
        return;
    snap_app_unref(next[i].sa);
    memmove(&next[i], &next[i + 1], (api->n_apps - (size_t)i - 1) * sizeof(*next));
    w.delete_id = id;
    if (commit_apps(c, next, api->n_apps - 1, write_app, &w) < 0)
        return;
    log_info("api: app %s deleted from zone %s (token %s)", id, z->name, c->token.id);
    api__ok(c, 200, json_pack("{s:s}", "id", id));
}

int api__apps_change_zone_drop(struct api_call *c, const char *zone_id, api_write_fn write,
                               void *ctx, size_t *dropped)
{
    struct api *api = c->api;
    struct api_app *next = calloc(api->n_apps + 1, sizeof(*next));
    size_t n = 0;

    if (!next)
        return -ENOMEM;
    for (size_t i = 0; i < api->n_apps; i++) {
        if (strcmp(api->apps[i].zone_id, zone_id) == 0)
            continue;
        next[n] = api->apps[i];
        snap_app_ref(next[n].sa);
        n++;
    }
    *dropped = api->n_apps - n;
    return commit_apps(c, next, n, write, ctx);
}

/* ---- start and stop */

static int load_app(void *ctx, const struct store_app *row)
{
    struct api *api = ctx;
    struct app_error aerr;
    json_error_t jerr;
    struct app *app;
    struct snap_app *sa;
    json_t *body;

    if (!api__zone_find(api, row->zone_id)) {
        log_error("store: app %s belongs to no zone; skipped", row->id);
        return 0;
    }
    body = json_loads(row->body, JSON_REJECT_DUPLICATES, &jerr);
    memset(&aerr, 0, sizeof(aerr));
    app = body ? app_from_json(body, APP_F_API | api->app_flags, &aerr) : NULL;
    json_decref(body);
    if (!app) {
        log_error("store: app %s no longer validates, skipped: %s%s%s", row->id,
                  body ? aerr.field : "bad JSON", body ? ": " : "", body ? aerr.message : "");
        return 0;
    }
    if (finish_app(app, row->id, row->created_on, row->modified_on) < 0) {
        app_free(app);
        return -ENOMEM;
    }
    sa = snap_app_new(app);
    if (!sa)
        return -ENOMEM;
    if (api->n_apps == api->cap_apps) {
        size_t cap = api->cap_apps ? 2 * api->cap_apps : 16;
        struct api_app *p = realloc(api->apps, cap * sizeof(*p));

        if (!p) {
            snap_app_unref(sa);
            return -ENOMEM;
        }
        api->apps = p;
        api->cap_apps = cap;
    }
    memset(&api->apps[api->n_apps], 0, sizeof(api->apps[0]));
    snprintf(api->apps[api->n_apps].id, sizeof(api->apps[0].id), "%s", row->id);
    snprintf(api->apps[api->n_apps].zone_id, sizeof(api->apps[0].zone_id), "%s", row->zone_id);
    api->apps[api->n_apps].sa = sa;
    api->n_apps++;
    return 0;
}

int api__apps_load(struct api *api, char *err, size_t errlen)
{
    int rc = store_app_each(api->store, load_app, api);

    if (rc < 0) {
        snprintf(err, errlen, "store: reading apps: %s",
                 rc == -ENOMEM ? "out of memory" : store_errmsg(api->store));
        return rc;
    }
    api->sas = calloc(api->n_apps + 1, sizeof(*api->sas));
    if (!api->sas) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < api->n_apps; i++)
        api->sas[i] = api->apps[i].sa;
    return 0;
}

void api__apps_free(struct api *api)
{
    for (size_t i = 0; i < api->n_apps; i++)
        snap_app_unref(api->apps[i].sa);
    free(api->apps);
    free(api->sas);
    api->apps = NULL;
    api->sas = NULL;
    api->n_apps = api->cap_apps = 0;
}
