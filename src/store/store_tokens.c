/* src/store/store_tokens.c: API tokens, kept only as SHA-256 hashes. A token is
 * found by its hash (a unique index), so a lookup costs the same whatever the
 * token; the caller still compares the hash it gets back in constant time. */
#include "store/store.h"

#include <errno.h>
#include <string.h>

#include "store/store_internal.h"

int store_token_insert(struct store *s, const struct store_token *t)
{
    sqlite3_stmt *st = store__stmt(s, ST_TOKEN_INSERT);

    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, t->hash, sizeof(t->hash), SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->permissions, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->zones, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, t->is_bootstrap ? 1 : 0);
    sqlite3_bind_text(st, 7, t->created_on, -1, SQLITE_STATIC);
    return store__exec(s, st);
}

int store_token_set_bootstrap(struct store *s, const struct store_token *t)
{
    struct store_token copy = *t;
    int rc;

    copy.is_bootstrap = true;
    rc = store__exec(s, store__stmt(s, ST_TOKEN_DELETE_BOOTSTRAP));
    if (rc < 0)
        return rc;
    return store_token_insert(s, &copy);
}

int store_token_find(struct store *s, const uint8_t hash[32], struct store_token *out)
{
    sqlite3_stmt *st = store__stmt(s, ST_TOKEN_FIND);
    int rc;

    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        store__col_text(st, 0, out->id, sizeof(out->id));
        store__col_text(st, 1, out->name, sizeof(out->name));
        if (sqlite3_column_bytes(st, 2) == (int)sizeof(out->hash))
            memcpy(out->hash, sqlite3_column_blob(st, 2), sizeof(out->hash));
        store__col_text(st, 3, out->permissions, sizeof(out->permissions));
        store__col_text(st, 4, out->zones, sizeof(out->zones));
        out->is_bootstrap = sqlite3_column_int(st, 5) != 0;
        store__col_text(st, 6, out->created_on, sizeof(out->created_on));
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return rc == SQLITE_ROW ? 0 : store__errno(rc);
}

int store_token_count(struct store *s)
{
    sqlite3_stmt *st = store__stmt(s, ST_TOKEN_COUNT);
    int rc = sqlite3_step(st), n = 0;

    if (rc == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? n : store__errno(rc);
}
