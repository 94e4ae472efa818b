/* src/store/db.c: the SQLite handle, its migrations and its prepared statements.
 *
 * The database is one file, <data_dir>/prism.db, in WAL mode with
 * synchronous=NORMAL: a commit is durable against a crash of prism (the WAL is
 * written before COMMIT returns) and against power loss up to the last
 * checkpoint, which is what SQLite recommends for WAL. WAL also lets the
 * `prism token create` command write a token while `prism serve` runs: readers
 * never block, and the one writer that finds the lock taken waits up to
 * STORE_BUSY_TIMEOUT_MS (busy_timeout) before failing with -EBUSY.
 *
 * Migrations are a list of SQL scripts; schema_version holds how many ran. A new
 * schema change is a new entry at the end, never an edit of an old one. Each
 * migration runs in the same IMMEDIATE transaction as the version bump, so two
 * processes opening a fresh file at once cannot both apply it.
 *
 * Every statement is prepared once, at open; the CRUD files reset and bind them.
 * Left out on purpose: analytics tables (issue 5), etcd (issue 7). */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bug.h"
#include "store/store_internal.h"

static const char *const migrations[] = {
    /* 1: the API objects */
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, created_on TEXT NOT NULL) STRICT;"
    "CREATE TABLE zones ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  created_on TEXT NOT NULL, modified_on TEXT NOT NULL) STRICT;"
    "CREATE TABLE apps ("
    "  id TEXT PRIMARY KEY, zone_id TEXT NOT NULL REFERENCES zones(id),"
    "  body TEXT NOT NULL, created_on TEXT NOT NULL, modified_on TEXT NOT NULL) STRICT;"
    "CREATE INDEX apps_zone ON apps(zone_id);"
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, hash BLOB NOT NULL UNIQUE,"
    "  permissions TEXT NOT NULL, zones TEXT NOT NULL,"
    "  is_bootstrap INTEGER NOT NULL DEFAULT 0, created_on TEXT NOT NULL) STRICT;",
    /* 2: the addresses DNS names hold from the edge pools, so they survive a restart */
    "CREATE TABLE edge_addrs ("
    "  name TEXT NOT NULL, addr TEXT NOT NULL, PRIMARY KEY (name, addr)) STRICT, WITHOUT ROWID;",
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_ACCOUNT_FIRST] = "SELECT id, name, created_on FROM accounts ORDER BY rowid LIMIT 1",
    [ST_ACCOUNT_INSERT] = "INSERT INTO accounts (id, name, created_on) VALUES (?, ?, ?)",
    [ST_ZONE_INSERT] = "INSERT INTO zones (id, name, account_id, created_on, modified_on)"
                       " VALUES (?, ?, ?, ?, ?)",
    [ST_ZONE_DELETE] = "DELETE FROM zones WHERE id = ?",
    [ST_ZONE_DELETE_APPS] = "DELETE FROM apps WHERE zone_id = ?",
    [ST_ZONE_EACH] = "SELECT id, name, account_id, created_on, modified_on FROM zones"
                     " ORDER BY rowid",
    [ST_APP_PUT] = "INSERT OR REPLACE INTO apps (id, zone_id, body, created_on, modified_on)"
                   " VALUES (?, ?, ?, ?, ?)",
    [ST_APP_DELETE] = "DELETE FROM apps WHERE id = ?",
    [ST_APP_EACH] = "SELECT id, zone_id, body, created_on, modified_on FROM apps ORDER BY rowid",
    [ST_TOKEN_INSERT] = "INSERT INTO tokens (id, name, hash, permissions, zones, is_bootstrap,"
                        " created_on) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_TOKEN_DELETE_BOOTSTRAP] = "DELETE FROM tokens WHERE is_bootstrap = 1",
    [ST_TOKEN_FIND] = "SELECT id, name, hash, permissions, zones, is_bootstrap, created_on"
                      " FROM tokens WHERE hash = ?",
    [ST_TOKEN_COUNT] = "SELECT count(*) FROM tokens",
    [ST_EDGE_CLEAR] = "DELETE FROM edge_addrs",
    [ST_EDGE_INSERT] = "INSERT OR IGNORE INTO edge_addrs (name, addr) VALUES (?, ?)",
    [ST_EDGE_EACH] = "SELECT name, addr FROM edge_addrs ORDER BY name, addr",
};

int store__errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

sqlite3_stmt *store__stmt(struct store *s, enum store__stmt which)
{
    sqlite3_stmt *st = s->stmts[which];

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

int store__exec(struct store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    (void)s;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store__errno(rc);
}

void store__col_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

const char *store_errmsg(struct store *s)
{
    return sqlite3_errmsg(s->db);
}

int store_schema_version(struct store *s)
{
    return s->version;
}

int store_begin(struct store *s)
{
    return store__exec(s, store__stmt(s, ST_BEGIN));
}

int store_commit(struct store *s)
{
    int rc = store__exec(s, store__stmt(s, ST_COMMIT));

    if (rc < 0)
        store_rollback(s);
    return rc;
}

void store_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        store__exec(s, store__stmt(s, ST_ROLLBACK));
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return store__errno(rc) ? store__errno(rc) : -EIO;
    }
    return 0;
}

static int read_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st;
    int rc;

    rc = sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store__errno(rc);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store__errno(rc);
}

/* Applies the migrations the file lacks, all in one transaction. */
static int migrate(struct store *s, char *err, size_t errlen)
{
    int n = (int)ARRAY_SIZE(migrations), v = 0, rc;
    char sql[64];

    rc = exec_sql(s->db,
                  "BEGIN IMMEDIATE;"
                  "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);",
                  err, errlen);
    if (rc < 0)
        return rc;
    rc = read_version(s->db, &v);
    if (rc < 0) {
        snprintf(err, errlen, "schema_version: %s", sqlite3_errmsg(s->db));
        goto fail;
    }
    if (v > n) {
        snprintf(err, errlen, "the database has schema version %d; this prism knows up to %d", v,
                 n);
        rc = -EPROTO;
        goto fail;
    }
    for (int i = v; i < n; i++) {
        rc = exec_sql(s->db, migrations[i], err, errlen);
        if (rc < 0)
            goto fail;
    }
    if (v == 0)
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", n);
    else
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", n);
    rc = exec_sql(s->db, sql, err, errlen);
    if (rc < 0)
        goto fail;
    rc = exec_sql(s->db, "COMMIT", err, errlen);
    if (rc < 0)
        goto fail;
    s->version = n;
    return 0;
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof(*s));
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);
    if (exec_sql(s->db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 "PRAGMA foreign_keys=ON; PRAGMA secure_delete=OFF;",
                 err, errlen) < 0)
        goto fail;
    if (migrate(s, err, errlen) < 0)
        goto fail;
    for (int i = 0; i < ST__COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[i],
                                NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "preparing \"%s\": %s", stmt_sql[i], sqlite3_errmsg(s->db));
            goto fail;
        }
    }
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close(s->db);
    free(s);
}
