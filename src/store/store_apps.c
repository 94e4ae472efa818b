/* src/store/store_apps.c: the Spectrum apps created through the API. Each row
 * keeps the app object as the API shows it (JSON text), so a restart validates
 * and compiles it again with the same code as a request would. */
#include "store/store.h"

#include <errno.h>
#include <string.h>

#include "store/store_internal.h"

int store_app_put(struct store *s, const struct store_app *a)
{
    sqlite3_stmt *st = store__stmt(s, ST_APP_PUT);

    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->zone_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->body, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->created_on, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, a->modified_on, -1, SQLITE_STATIC);
    return store__exec(s, st);
}

int store_app_delete(struct store *s, const char *id)
{
    sqlite3_stmt *st = store__stmt(s, ST_APP_DELETE);
    int rc;

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = store__exec(s, st);
    if (rc < 0)
        return rc;
    return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

int store_app_each(struct store *s, store_app_fn fn, void *ctx)
{
    sqlite3_stmt *st = store__stmt(s, ST_APP_EACH);
    struct store_app a;
    int rc, ret = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&a, 0, sizeof(a));
        store__col_text(st, 0, a.id, sizeof(a.id));
        store__col_text(st, 1, a.zone_id, sizeof(a.zone_id));
        a.body = (const char *)sqlite3_column_text(st, 2);
        if (!a.body)
            a.body = "";
        store__col_text(st, 3, a.created_on, sizeof(a.created_on));
        store__col_text(st, 4, a.modified_on, sizeof(a.modified_on));
        ret = fn(ctx, &a);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = store__errno(rc) ? store__errno(rc) : -EIO;
    sqlite3_reset(st);
    return ret;
}
