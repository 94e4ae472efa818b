/* src/store/store_edges.c: the edge pool map (which address each DNS name holds). */
#include "store/store.h"

#include <errno.h>
#include <string.h>

#include "store/store_internal.h"

int store_edge_addrs_replace(struct store *s, const struct store_edge_addr *v, size_t n)
{
    int rc = store_begin(s);

    if (rc == 0)
        rc = store__exec(s, store__stmt(s, ST_EDGE_CLEAR));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_stmt *st = store__stmt(s, ST_EDGE_INSERT);

        sqlite3_bind_text(st, 1, v[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, v[i].addr, -1, SQLITE_STATIC);
        rc = store__exec(s, st);
    }
    if (rc == 0)
        return store_commit(s);
    store_rollback(s);
    return rc;
}

int store_edge_addr_each(struct store *s, store_edge_addr_fn fn, void *ctx)
{
    sqlite3_stmt *st = store__stmt(s, ST_EDGE_EACH);
    struct store_edge_addr a;
    int rc, ret = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        a.name = (const char *)sqlite3_column_text(st, 0);
        a.addr = (const char *)sqlite3_column_text(st, 1);
        if (!a.name || !a.addr)
            continue;
        ret = fn(ctx, &a);
        if (ret != 0)
            break;
    }
    sqlite3_reset(st);
    if (ret != 0)
        return ret;
    return rc == SQLITE_DONE ? 0 : store__errno(rc);
}
