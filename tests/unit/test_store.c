/* tests/unit/test_store.c: src/store/ on an in-memory SQLite database. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"

static struct store *open_mem(void)
{
    char err[256] = "";
    struct store *s = store_open(":memory:", err, sizeof(err));

    if (!s)
        fail_msg("store_open: %s", err);
    return s;
}

static void test_open_migrates(void **state)
{
    struct store *s = open_mem();

    (void)state;
    assert_int_equal(store_schema_version(s), 2);
    assert_int_equal(store_token_count(s), 0);
    store_close(s);
}

static void test_account(void **state)
{
    struct store *s = open_mem();
    struct store_account a = {.id = "0123456789abcdef0123456789abcdef",
                              .name = "prism",
                              .created_on = "2024-01-01T00:00:00.000000Z"};
    struct store_account got;

    (void)state;
    assert_int_equal(store_account_first(s, &got), -ENOENT);
    assert_int_equal(store_account_insert(s, &a), 0);
    assert_int_equal(store_account_first(s, &got), 0);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.name, "prism");
    store_close(s);
}

static int count_zone(void *ctx, const struct store_zone *z)
{
    (void)z;
    (*(int *)ctx)++;
    return 0;
}

static int count_app(void *ctx, const struct store_app *a)
{
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static void setup_zone(struct store *s, const char *id, const char *name)
{
    struct store_account a = {
        .id = "0123456789abcdef0123456789abcdef", .name = "prism", .created_on = "t"};
    struct store_zone z = {
        .account_id = "0123456789abcdef0123456789abcdef", .created_on = "t", .modified_on = "t"};

    store_account_insert(s, &a); /* may already be there */
    snprintf(z.id, sizeof(z.id), "%s", id);
    snprintf(z.name, sizeof(z.name), "%s", name);
    assert_int_equal(store_zone_insert(s, &z), 0);
}

static void test_zones_and_apps(void **state)
{
    struct store *s = open_mem();
    struct store_zone dup = {.id = "ffffffffffffffffffffffffffffffff",
                             .name = "example.com",
                             .account_id = "0123456789abcdef0123456789abcdef",
                             .created_on = "t",
                             .modified_on = "t"};
    struct store_app app = {.id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                            .zone_id = "11111111111111111111111111111111",
                            .body = "{\"protocol\":\"tcp/22\"}",
                            .created_on = "t",
                            .modified_on = "t"};
    int n = 0;

    (void)state;
    setup_zone(s, "11111111111111111111111111111111", "example.com");
    assert_int_equal(store_zone_insert(s, &dup), -EEXIST); /* the name is unique */
    assert_int_equal(store_zone_each(s, count_zone, &n), 0);
    assert_int_equal(n, 1);

    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_app_put(s, &app), 0);
    app.body = "{\"protocol\":\"tcp/23\"}";
    assert_int_equal(store_app_put(s, &app), 0); /* replace, not a second row */
    assert_int_equal(store_commit(s), 0);
    n = 0;
    assert_int_equal(store_app_each(s, count_app, &n), 0);
    assert_int_equal(n, 1);

    /* a rolled back transaction leaves nothing */
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_app_delete(s, app.id), 0);
    store_rollback(s);
    n = 0;
    store_app_each(s, count_app, &n);
    assert_int_equal(n, 1);

    /* deleting the zone deletes its apps */
    assert_int_equal(store_zone_delete(s, "11111111111111111111111111111111"), 0);
    n = 0;
    store_app_each(s, count_app, &n);
    assert_int_equal(n, 0);
    assert_int_equal(store_zone_delete(s, "11111111111111111111111111111111"), -ENOENT);
    assert_int_equal(store_app_delete(s, app.id), -ENOENT);
    store_close(s);
}

static void test_tokens(void **state)
{
    struct store *s = open_mem();
    struct store_token t, got;
    uint8_t other[32];

    (void)state;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", "22222222222222222222222222222222");
    snprintf(t.name, sizeof(t.name), "ci");
    memset(t.hash, 0xab, sizeof(t.hash));
    snprintf(t.permissions, sizeof(t.permissions), "zone_read");
    snprintf(t.zones, sizeof(t.zones), "example.com");
    snprintf(t.created_on, sizeof(t.created_on), "t");
    assert_int_equal(store_token_insert(s, &t), 0);
    assert_int_equal(store_token_insert(s, &t), -EEXIST);
    assert_int_equal(store_token_find(s, t.hash, &got), 0);
    assert_string_equal(got.name, "ci");
    assert_string_equal(got.zones, "example.com");
    assert_memory_equal(got.hash, t.hash, 32);
    assert_false(got.is_bootstrap);
    memset(other, 0xcd, sizeof(other));
    assert_int_equal(store_token_find(s, other, &got), -ENOENT);

    /* the bootstrap token is replaced, the others stay */
    snprintf(t.id, sizeof(t.id), "%s", "33333333333333333333333333333333");
    memset(t.hash, 0x01, sizeof(t.hash));
    assert_int_equal(store_token_set_bootstrap(s, &t), 0);
    snprintf(t.id, sizeof(t.id), "%s", "44444444444444444444444444444444");
    memset(t.hash, 0x02, sizeof(t.hash));
    assert_int_equal(store_token_set_bootstrap(s, &t), 0);
    assert_int_equal(store_token_count(s), 2);
    assert_int_equal(store_token_find(s, t.hash, &got), 0);
    assert_true(got.is_bootstrap);
    store_close(s);
}

static void test_bad_path(void **state)
{
    char err[256] = "";

    (void)state;
    assert_null(store_open("/nonexistent-dir/x/prism.db", err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

struct edge_rows {
    char got[8][64];
    int n;
};

static int edge_row(void *ctx, const struct store_edge_addr *a)
{
    struct edge_rows *r = ctx;

    assert_true(r->n < 8);
    snprintf(r->got[r->n++], sizeof(r->got[0]), "%s %s", a->name, a->addr);
    return 0;
}

static void test_edge_addrs(void **state)
{
    struct store *s = open_mem();
    struct store_edge_addr v[] = {{"b.example.com", "127.10.0.9"},
                                  {"a.example.com", "fd00::5"},
                                  {"a.example.com", "127.10.0.2"}};
    struct edge_rows r = {0};

    (void)state;
    assert_int_equal(store_edge_addr_each(s, edge_row, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(store_edge_addrs_replace(s, v, 3), 0);
    assert_int_equal(store_edge_addr_each(s, edge_row, &r), 0);
    assert_int_equal(r.n, 3); /* in name order */
    assert_string_equal(r.got[0], "a.example.com 127.10.0.2");
    assert_string_equal(r.got[1], "a.example.com fd00::5");
    assert_string_equal(r.got[2], "b.example.com 127.10.0.9");
    /* replaced whole */
    assert_int_equal(store_edge_addrs_replace(s, v, 1), 0);
    r.n = 0;
    assert_int_equal(store_edge_addr_each(s, edge_row, &r), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.got[0], "b.example.com 127.10.0.9");
    assert_int_equal(store_edge_addrs_replace(s, NULL, 0), 0);
    r.n = 0;
    assert_int_equal(store_edge_addr_each(s, edge_row, &r), 0);
    assert_int_equal(r.n, 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_migrates),  cmocka_unit_test(test_account),
        cmocka_unit_test(test_zones_and_apps), cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_bad_path),       cmocka_unit_test(test_edge_addrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
