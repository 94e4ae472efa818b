/* src/api/api_internal.h: what api.c shares with the api_<resource>.c files. */
#ifndef API_API_INTERNAL_H
#define API_API_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/envelope.h"
#include "api/http.h"
#include "api/ids.h"
#include "api/router.h"
#include "store/store.h"

#define API_PER_PAGE_DEFAULT 20
#define API_PER_PAGE_MAX 100

/* An app created through the API. */
struct api_app {
    char id[IDS_HEX_LEN + 1];
    char zone_id[IDS_HEX_LEN + 1];
    struct snap_app *sa; /* counted; sa->app->json holds id, created_on, modified_on too */
};

struct api {
    struct store *store; /* borrowed */
    struct api_hooks hooks;
    unsigned app_flags; /* APP_F_* added to APP_F_API */
    struct store_account account;
    struct store_zone *zones; /* owned array, in creation order */
    size_t n_zones, cap_zones;
    struct api_app *apps; /* owned array, in creation order */
    size_t n_apps, cap_apps;
    struct snap_app **sas; /* owned array: apps[i].sa for api_apps() */
    struct http_server *http;
};

/* One request being answered. */
struct api_call {
    struct api *api;
    const struct http_req *req;
    struct http_resp *resp;
    struct router_match m;    /* path captures: m.params[0] is the zone id, [1] the app id */
    struct store_token token; /* the caller's token (after authentication) */
};

/* Answers <status> with an error envelope. */
void api__fail(struct api_call *c, unsigned status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers <status> with a success envelope around <result> (stolen). */
void api__ok(struct api_call *c, unsigned status, json_t *result);

/* Parses the body as one JSON object. Returns it (owned by the caller), or NULL
 * after answering 400. */
json_t *api__body_object(struct api_call *c);

struct api_page {
    size_t page, per_page;
    int order;    /* index into the caller's list of order names */
    bool is_desc; /* direction=desc */
};

/* Reads page, per_page, order (one of <orders>, default <def>) and direction.
 * Returns 0, or -EINVAL after answering 400. */
int api__page_params(struct api_call *c, const char *const *orders, size_t n_orders, int def,
                     struct api_page *out);
/* Answers the page <p> of <items> (sorted; borrowed, each gets a reference in
 * the result) with result_info. */
void api__ok_page(struct api_call *c, json_t *const *items, size_t n, const struct api_page *p);

/* The zone <id>, or NULL after answering 404 (unknown) or 403 (not this token's). */
struct store_zone *api__zone_for_call(struct api_call *c, const char *id);
struct store_zone *api__zone_find(struct api *api, const char *id);
json_t *api__zone_json(const struct api *api, const struct store_zone *z);

/* Loads apps from the store at start. */
int api__apps_load(struct api *api, char *err, size_t errlen);
/* Writes the store for a change; 0 or -errno. */
typedef int (*api_write_fn)(struct api_call *c, void *ctx);
/* Takes every API app of <zone_id> off the data plane, then runs <write>; if that
 * fails, puts them back. Returns 0, or -errno after answering. */
int api__apps_change_zone_drop(struct api_call *c, const char *zone_id, api_write_fn write,
                               void *ctx, size_t *dropped);
void api__apps_free(struct api *api);

/* Handlers. */
void api__healthz(struct api_call *c);
void api__token_verify(struct api_call *c);
void api__accounts_list(struct api_call *c);
void api__account_get(struct api_call *c);
void api__zones_list(struct api_call *c);
void api__zone_create(struct api_call *c);
void api__zone_get(struct api_call *c);
void api__zone_delete(struct api_call *c);
void api__apps_list(struct api_call *c);
void api__app_create(struct api_call *c);
void api__app_get(struct api_call *c);
void api__app_update(struct api_call *c);
void api__app_delete(struct api_call *c);

#endif
