/* src/api/api.h: the Cloudflare-v4-compatible REST API (issue 3): zones,
 * Spectrum apps, the account, token verification and /healthz, stored in SQLite
 * and applied live to the data plane through a callback into main.c.
 *
 * Runs on the control thread: every call here, and every request handler, runs
 * on the thread that owns <store> and the loop. */
#ifndef API_API_H
#define API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "api/http.h"
#include "proxy/snapshot.h"
#include "store/store.h"

struct loop;
struct api;

/* Makes the data plane run the node-file apps plus exactly <apps> (the full list
 * of API apps; borrowed: the callee takes its own references on success). Returns
 * 0 once the new listeners are open, or a negative errno with a reason in <err>,
 * leaving the running configuration as it was: -EEXIST when two apps overlap on
 * a transport, address and port; a bind error; -ENOMEM. */
typedef int (*api_apply_fn)(void *ctx, struct snap_app *const *apps, size_t n, char *err,
                            size_t errlen);
/* The apps of the node configuration file in force (borrowed; valid until the
 * next apply or reload). */
typedef struct snap_app *const *(*api_file_apps_fn)(void *ctx, size_t *n);

/* Renders the Prometheus text of GET /metrics into <buf>; returns its length, or
 * 0 when <len> is too small. */
typedef size_t (*api_metrics_fn)(void *ctx, char *buf, size_t len);

struct api_hooks {
    api_apply_fn apply;
    api_file_apps_fn file_apps;
    api_metrics_fn metrics; /* may be NULL: /metrics then answers 404 */
    void *ctx;
};

/* Loads the account, zones and apps of <store> (borrowed; outlives the api) and
 * compiles the apps again with app_from_json(APP_F_API | <app_flags>); creates the
 * node's account on a first start. Applies nothing: the caller applies
 * api_apps() with its file apps. Apps stored by an older prism that no longer
 * validate are skipped with an error in the log. Returns NULL with <err>. */
struct api *api_new(struct store *store, const struct api_hooks *hooks, unsigned app_flags,
                    char *err, size_t errlen);
void api_free(struct api *api);

/* The API apps (borrowed; valid until the next change through the API). */
struct snap_app *const *api_apps(const struct api *api, size_t *n);

/* Makes sure a bootstrap token with every permission exists: <env_token> (from
 * PRISM_API_TOKEN; may be NULL) when given, otherwise the token in
 * <data_dir>/api-token, generated there (mode 0600) on the first start. Writes
 * where the token comes from into <where> ("PRISM_API_TOKEN" or the file's path).
 * The token itself is never logged. Returns 0 or -errno with <err>. */
int api_bootstrap_token(struct api *api, const char *env_token, const char *data_dir, char *where,
                        size_t wherelen, char *err, size_t errlen);

/* The zones (for the DNS responder): how many, and the name of zone <i> (lower
 * case, no trailing dot; valid until the next API request). */
size_t api_zone_count(const struct api *api);
const char *api_zone_name(const struct api *api, size_t i);

/* Starts serving on <addr> from <loop>. Returns 0 or -errno with <err>. */
int api_listen(struct api *api, struct loop *loop, const struct sockaddr_storage *addr, char *err,
               size_t errlen);

/* Answers one request; the entry point http.c calls (and unit tests). */
void api_handle(void *api, const struct http_req *req, struct http_resp *resp);

/* `prism token create`: opens the store at <db_path> (creating it if needed),
 * adds a token named <name> with <perms> (a comma list, see auth.h) limited to
 * <zones> (comma list of zone ids or names; NULL or "" = every zone), and writes
 * the new token into <token_out>. Safe while `prism serve` runs on the same
 * file (WAL and a busy timeout). Returns 0, or -errno with <err>. */
int api_token_create(const char *db_path, const char *name, const char *perms, const char *zones,
                     char *token_out, size_t token_len, char *err, size_t errlen);

#endif
