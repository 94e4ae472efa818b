/* src/store/store_internal.h: what db.c shares with the store_<thing>.c files. */
#ifndef STORE_STORE_INTERNAL_H
#define STORE_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

/* Every statement the store runs, prepared once by store_open(). */
enum store__stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_ACCOUNT_FIRST,
    ST_ACCOUNT_INSERT,
    ST_ZONE_INSERT,
    ST_ZONE_DELETE,
    ST_ZONE_DELETE_APPS,
    ST_ZONE_EACH,
    ST_APP_PUT,
    ST_APP_DELETE,
    ST_APP_EACH,
    ST_TOKEN_INSERT,
    ST_TOKEN_DELETE_BOOTSTRAP,
    ST_TOKEN_FIND,
    ST_TOKEN_COUNT,
    ST_EDGE_CLEAR,
    ST_EDGE_INSERT,
    ST_EDGE_EACH,
    ST__COUNT,
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST__COUNT]; /* owned */
    int version;                    /* schema version after the migrations */
};

/* Resets <st> and returns it ready for binding. */
sqlite3_stmt *store__stmt(struct store *s, enum store__stmt which);
/* Runs a statement that returns no rows (after binding). Returns 0 or -errno. */
int store__exec(struct store *s, sqlite3_stmt *st);
/* Maps an SQLite result code to a negative errno. */
int store__errno(int rc);
/* Copies column <col> of the current row into <dst> (always terminated). */
void store__col_text(sqlite3_stmt *st, int col, char *dst, size_t cap);

#endif
