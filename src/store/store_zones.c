/* src/store/store_zones.c: the account and the zones tables. */
#include "store/store.h"

#include <errno.h>
#include <string.h>

#include "store/store_internal.h"

int store_account_first(struct store *s, struct store_account *out)
{
    sqlite3_stmt *st = store__stmt(s, ST_ACCOUNT_FIRST);
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW) {
        store__col_text(st, 0, out->id, sizeof(out->id));
        store__col_text(st, 1, out->name, sizeof(out->name));
        store__col_text(st, 2, out->created_on, sizeof(out->created_on));
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return rc == SQLITE_ROW ? 0 : store__errno(rc);
}

int store_account_insert(struct store *s, const struct store_account *a)
{
    sqlite3_stmt *st = store__stmt(s, ST_ACCOUNT_INSERT);

    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, a->created_on, -1, SQLITE_STATIC);
    return store__exec(s, st);
}

int store_zone_insert(struct store *s, const struct store_zone *z)
{
    sqlite3_stmt *st = store__stmt(s, ST_ZONE_INSERT);

    sqlite3_bind_text(st, 1, z->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, z->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, z->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, z->created_on, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, z->modified_on, -1, SQLITE_STATIC);
    return store__exec(s, st);
}

int store_zone_delete(struct store *s, const char *id)
{
    sqlite3_stmt *st = store__stmt(s, ST_ZONE_DELETE_APPS);
    int rc;

    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = store__exec(s, st);
    if (rc < 0)
        return rc;
    st = store__stmt(s, ST_ZONE_DELETE);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = store__exec(s, st);
    if (rc < 0)
        return rc;
    return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

int store_zone_each(struct store *s, store_zone_fn fn, void *ctx)
{
    sqlite3_stmt *st = store__stmt(s, ST_ZONE_EACH);
    struct store_zone z;
    int rc, ret = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&z, 0, sizeof(z));
        store__col_text(st, 0, z.id, sizeof(z.id));
        store__col_text(st, 1, z.name, sizeof(z.name));
        store__col_text(st, 2, z.account_id, sizeof(z.account_id));
        store__col_text(st, 3, z.created_on, sizeof(z.created_on));
        store__col_text(st, 4, z.modified_on, sizeof(z.modified_on));
        ret = fn(ctx, &z);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = store__errno(rc) ? store__errno(rc) : -EIO;
    sqlite3_reset(st);
    return ret;
}
