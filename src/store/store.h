/* src/store/store.h: the embedded store: one SQLite database in data_dir
 * (../shared/DESIGN.md section 5) holding the API objects: the account, zones,
 * Spectrum apps and API tokens (only their SHA-256 hashes).
 *
 * One handle belongs to one thread (the control thread in `prism serve`; the
 * `prism token create` command opens its own). Every call runs prepared
 * statements and returns 0 or a negative errno: -ENOENT (no such row), -EEXIST (a
 * unique key is taken), -EBUSY (another process holds the write lock longer than
 * the busy timeout), -EIO (anything else; store_errmsg() says what). */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ID_LEN 32 /* ids are 32 lowercase hex characters */
#define STORE_TIME_MAX 40
#define STORE_NAME_MAX 253
#define STORE_BUSY_TIMEOUT_MS 2000

struct store;

/* Opens (creating if needed) the database at <path> (":memory:" for tests), turns
 * on WAL and synchronous=NORMAL, and runs the migrations the file lacks. Returns
 * NULL with a reason in <err>. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *s);

/* The schema version of an open store (the number of migrations applied). */
int store_schema_version(struct store *s);
/* The last SQLite error message of <s>, for logs. */
const char *store_errmsg(struct store *s);

/* One write transaction (BEGIN IMMEDIATE). Transactions do not nest. */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

struct store_account {
    char id[STORE_ID_LEN + 1];
    char name[128];
    char created_on[STORE_TIME_MAX];
};

/* The first account created (the node's own). Returns 0 or -ENOENT. */
int store_account_first(struct store *s, struct store_account *out);
int store_account_insert(struct store *s, const struct store_account *a);

struct store_zone {
    char id[STORE_ID_LEN + 1];
    char name[STORE_NAME_MAX + 1];
    char account_id[STORE_ID_LEN + 1];
    char created_on[STORE_TIME_MAX];
    char modified_on[STORE_TIME_MAX];
};

/* Returns -EEXIST when the id or the name is taken. */
int store_zone_insert(struct store *s, const struct store_zone *z);
/* Deletes the zone and every app of it. Returns 0 or -ENOENT. */
int store_zone_delete(struct store *s, const char *id);

/* Callbacks of the _each() calls: a non-zero return stops the walk and is returned. */
typedef int (*store_zone_fn)(void *ctx, const struct store_zone *z);
int store_zone_each(struct store *s, store_zone_fn fn, void *ctx);

struct store_app {
    char id[STORE_ID_LEN + 1];
    char zone_id[STORE_ID_LEN + 1];
    const char *body; /* the app object as JSON text; borrowed */
    char created_on[STORE_TIME_MAX];
    char modified_on[STORE_TIME_MAX];
};

/* Inserts or replaces the app with this id. */
int store_app_put(struct store *s, const struct store_app *a);
/* Returns 0 or -ENOENT. */
int store_app_delete(struct store *s, const char *id);
typedef int (*store_app_fn)(void *ctx, const struct store_app *a);
int store_app_each(struct store *s, store_app_fn fn, void *ctx);

struct store_token {
    char id[STORE_ID_LEN + 1];
    char name[128];
    uint8_t hash[32];      /* SHA-256 of the token; the token itself is never stored */
    char permissions[512]; /* "zone_read,zone_settings_write" */
    char zones[2048];      /* "" = every zone; else a comma list of zone ids or names */
    bool is_bootstrap;     /* the token from PRISM_API_TOKEN or <data_dir>/api-token */
    char created_on[STORE_TIME_MAX];
};

/* Returns -EEXIST when the id or the hash is taken. */
int store_token_insert(struct store *s, const struct store_token *t);
/* Replaces the bootstrap token (there is at most one) with <t>. */
int store_token_set_bootstrap(struct store *s, const struct store_token *t);
/* Finds the token whose hash is <hash>. Returns 0 or -ENOENT. */
int store_token_find(struct store *s, const uint8_t hash[32], struct store_token *out);
/* How many tokens there are, or a negative errno. */
int store_token_count(struct store *s);

/* The edge pool map: which address (text, "127.10.3.4" or "fd00::5") each DNS
 * name holds. Replaced whole after each apply that uses pools. */
struct store_edge_addr {
    const char *name;
    const char *addr;
};

/* Replaces every row with <v> (n rows), in one transaction. */
int store_edge_addrs_replace(struct store *s, const struct store_edge_addr *v, size_t n);
typedef int (*store_edge_addr_fn)(void *ctx, const struct store_edge_addr *a);
int store_edge_addr_each(struct store *s, store_edge_addr_fn fn, void *ctx);

#endif
