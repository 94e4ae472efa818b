/* tests/unit/test_api_handle.c: the API's request handling (src/api/api*.c)
 * without HTTP: requests go straight into api_handle() over an in-memory store,
 * with a fake data plane that records what it was asked to run. The same
 * malformed-request table runs over real HTTP in
 * tests/integration/test_api_malformed.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/envelope.h"
#include "api/router.h"
#include "core/log.h"
#include "proxy/app.h"

#define TOKEN "tok_0123456789abcdefghijklmnopqrstuvwxyzABCD" /* 44 characters */

struct fake_dp {
    size_t n_applied; /* apps in the last successful apply */
    int calls;
    int fail_with; /* next apply returns this when non-zero */
};

static int fake_apply(void *ctx, struct snap_app *const *apps, size_t n, char *err, size_t errlen)
{
    struct fake_dp *dp = ctx;

    (void)apps;
    dp->calls++;
    if (dp->fail_with) {
        int rc = dp->fail_with;

        dp->fail_with = 0;
        snprintf(err, errlen, "app 'x' and app 'y' both want tcp 127.0.0.1:22");
        return rc;
    }
    dp->n_applied = n;
    return 0;
}

struct fixture {
    struct store *store;
    struct api *api;
    struct fake_dp dp;
    char zone_id[33];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct api_hooks hooks = {.apply = fake_apply, .ctx = &f->dp};
    char err[256], where[64];

    f->store = store_open(":memory:", err, sizeof(err));
    assert_non_null(f->store);
    f->api = api_new(f->store, &hooks, APP_F_UDP_BUILT, err, sizeof(err));
    assert_non_null(f->api);
    assert_int_equal(
        api_bootstrap_token(f->api, TOKEN, "/nonexistent", where, sizeof(where), err, sizeof(err)),
        0);
    assert_string_equal(where, "PRISM_API_TOKEN");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    api_free(f->api);
    store_close(f->store);
    free(f);
    return 0;
}

/* Sends one request; returns the status and sets *<out> to the parsed answer. */
static unsigned call(struct fixture *f, const char *method, const char *path, const char *query,
                     const char *auth, const char *body, json_t **out)
{
    struct http_req req = {.method = method,
                           .path = path,
                           .body = body ? body : "",
                           .body_len = body ? strlen(body) : 0};
    struct http_resp resp = {0};
    char qbuf[512], *p = qbuf;
    char authbuf[256];

    if (auth) {
        snprintf(authbuf, sizeof(authbuf), "Bearer %s", auth);
        req.authorization = authbuf;
    }
    snprintf(qbuf, sizeof(qbuf), "%s", query ? query : "");
    while (*p && req.n_query < HTTP_MAX_QUERY) {
        char *amp = strchr(p, '&'), *eq;

        if (amp)
            *amp = '\0';
        eq = strchr(p, '=');
        if (eq)
            *eq = '\0';
        req.query[req.n_query].key = p;
        req.query[req.n_query].value = eq ? eq + 1 : "";
        req.n_query++;
        if (!amp)
            break;
        p = amp + 1;
    }
    api_handle(f->api, &req, &resp);
    assert_non_null(resp.body);
    assert_true(json_is_boolean(json_object_get(resp.body, "success")));
    assert_true(json_is_array(json_object_get(resp.body, "errors")));
    assert_true(json_is_array(json_object_get(resp.body, "messages")));
    assert_non_null(json_object_get(resp.body, "result"));
    if (out)
        *out = resp.body;
    else
        json_decref(resp.body);
    return resp.status;
}

static int error_code(json_t *env)
{
    return (int)json_integer_value(
        json_object_get(json_array_get(json_object_get(env, "errors"), 0), "code"));
}

static void make_zone(struct fixture *f, const char *name)
{
    char body[128];
    json_t *r;

    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    assert_int_equal(call(f, "POST", "/client/v4/zones", NULL, TOKEN, body, &r), 200);
    snprintf(f->zone_id, sizeof(f->zone_id), "%s",
             json_string_value(json_object_get(json_object_get(r, "result"), "id")));
    json_decref(r);
}

static const char *app_body(int port, const char *name)
{
    static char buf[512];

    snprintf(buf, sizeof(buf),
             "{\"protocol\":\"tcp/%d\",\"dns\":{\"type\":\"CNAME\",\"name\":\"%s\"},"
             "\"origin_direct\":[\"tcp://127.0.0.1:9\"]}",
             port, name);
    return buf;
}

static void test_routes(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    assert_int_equal(call(f, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
    assert_int_equal(call(f, "GET", "/nope", NULL, TOKEN, NULL, &r), 404);
    assert_int_equal(error_code(r), 7003);
    json_decref(r);
    assert_int_equal(call(f, "PATCH", "/client/v4/zones", NULL, TOKEN, NULL, &r), 405);
    assert_int_equal(error_code(r), 7001);
    json_decref(r);
}

static void test_auth(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    assert_int_equal(call(f, "GET", "/client/v4/zones", NULL, NULL, NULL, &r), 401);
    assert_int_equal(error_code(r), 10000);
    json_decref(r);
    assert_int_equal(call(f, "GET", "/client/v4/zones", NULL, "short", NULL, NULL), 401);
    assert_int_equal(call(f, "GET", "/client/v4/zones", NULL,
                          "unknown_0123456789abcdefghijklmnopqrstuvwxyz", NULL, NULL),
                     401);
    assert_int_equal(call(f, "GET", "/client/v4/user/tokens/verify", NULL, TOKEN, NULL, &r), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "status")),
                        "active");
    json_decref(r);
}

static void test_app_lifecycle(void **state)
{
    struct fixture *f = *state;
    char path[256], id[33];
    json_t *r, *res;

    make_zone(f, "example.com");
    snprintf(path, sizeof(path), "/client/v4/zones/%s/spectrum/apps", f->zone_id);
    assert_int_equal(call(f, "POST", path, NULL, TOKEN, app_body(2222, "ssh.example.com"), &r),
                     200);
    res = json_object_get(r, "result");
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(res, "id")));
    assert_int_equal(strlen(id), 32);
    assert_string_equal(json_string_value(json_object_get(res, "tls")), "off");
    assert_string_equal(json_string_value(json_object_get(res, "traffic_type")), "direct");
    assert_int_equal(strlen(json_string_value(json_object_get(res, "created_on"))), 27);
    json_decref(r);
    assert_int_equal(f->dp.n_applied, 1);

    /* a conflict on the data plane: 400 11103, nothing stored */
    f->dp.fail_with = -EEXIST;
    assert_int_equal(call(f, "POST", path, NULL, TOKEN, app_body(2222, "b.example.com"), &r), 400);
    assert_int_equal(error_code(r), 11103);
    json_decref(r);
    assert_int_equal(call(f, "GET", path, NULL, TOKEN, NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r, "result")), 1);
    json_decref(r);

    /* a name outside the zone */
    assert_int_equal(call(f, "POST", path, NULL, TOKEN, app_body(2223, "ssh.example.org"), &r),
                     400);
    assert_int_equal(error_code(r), 16001);
    json_decref(r);

    /* update, then delete */
    snprintf(path, sizeof(path), "/client/v4/zones/%s/spectrum/apps/%s", f->zone_id, id);
    assert_int_equal(call(f, "PUT", path, NULL, TOKEN, app_body(2224, "ssh.example.com"), &r), 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "result"), "protocol")), "tcp/2224");
    json_decref(r);
    assert_int_equal(call(f, "DELETE", path, NULL, TOKEN, NULL, &r), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "id")), id);
    json_decref(r);
    assert_int_equal(f->dp.n_applied, 0);
    assert_int_equal(call(f, "GET", path, NULL, TOKEN, NULL, NULL), 404);
}

static void test_pagination(void **state)
{
    struct fixture *f = *state;
    char path[256], name[64];
    json_t *r, *info;

    make_zone(f, "example.com");
    snprintf(path, sizeof(path), "/client/v4/zones/%s/spectrum/apps", f->zone_id);
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof(name), "a%02d.example.com", i);
        assert_int_equal(call(f, "POST", path, NULL, TOKEN, app_body(3000 + i, name), NULL), 200);
    }
    assert_int_equal(call(f, "GET", path, NULL, TOKEN, NULL, &r), 200);
    info = json_object_get(r, "result_info");
    assert_int_equal(json_integer_value(json_object_get(info, "count")), 20);
    assert_int_equal(json_integer_value(json_object_get(info, "total_count")), 25);
    assert_int_equal(json_integer_value(json_object_get(info, "total_pages")), 2);
    json_decref(r);
    assert_int_equal(call(f, "GET", path, "page=2&per_page=20", TOKEN, NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r, "result")), 5);
    json_decref(r);
    assert_int_equal(call(f, "GET", path, "page=9", TOKEN, NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r, "result")), 0);
    json_decref(r);
    assert_int_equal(call(f, "GET", path, "per_page=1&order=dns&direction=desc", TOKEN, NULL, &r),
                     200);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(r, "result"), 0), "dns"), "name")),
        "a24.example.com");
    json_decref(r);
}

/* Malformed requests: each with its status and code (the same table as the
 * integration test, minus what needs real HTTP). */
static void test_malformed(void **state)
{
    struct fixture *f = *state;
    char apps[256];
    static const struct {
        const char *body;
        unsigned status;
        int code;
    } bad_apps[] = {
        {"", 400, 6007},
        {"{", 400, 6007},
        {"[]", 400, 6007},
        {"{\"protocol\":\"tcp/22\",\"protocol\":\"tcp/23\"}", 400, 6007},
        {"{\"protocol\":\"tcp/22\",\"dns\":{\"type\":\"CNAME\",\"name\":\"a.example.com\"},"
         "\"origin_direct\":[\"tcp://127.0.0.1:9\"],\"bogus\":1}",
         400, 10012},
        {"{\"protocol\":22,\"dns\":{\"type\":\"CNAME\",\"name\":\"a.example.com\"},"
         "\"origin_direct\":[\"tcp://127.0.0.1:9\"]}",
         400, 11104},
        {"{\"protocol\":\"tcp/22\",\"dns\":{\"type\":\"CNAME\",\"name\":\"a.example.com\"},"
         "\"origin_direct\":[\"tcp://127.0.0.1:9\"],\"origin_dns\":{\"name\":\"o.example.com\"}}",
         400, 11000},
        {"{\"protocol\":\"tcp/22\",\"dns\":{\"type\":\"CNAME\",\"name\":\"a.example.com\"},"
         "\"origin_direct\":[\"tcp://::1:9\"]}",
         400, 11002},
    };

    make_zone(f, "example.com");
    snprintf(apps, sizeof(apps), "/client/v4/zones/%s/spectrum/apps", f->zone_id);
    for (size_t i = 0; i < sizeof(bad_apps) / sizeof(bad_apps[0]); i++) {
        json_t *r;
        unsigned st = call(f, "POST", apps, NULL, TOKEN, bad_apps[i].body, &r);

        if (st != bad_apps[i].status || error_code(r) != bad_apps[i].code)
            fail_msg("case %zu (%s): got %u/%d, want %u/%d", i, bad_apps[i].body, st, error_code(r),
                     bad_apps[i].status, bad_apps[i].code);
        json_decref(r);
    }
    assert_int_equal(call(f, "GET", apps, "per_page=0", TOKEN, NULL, NULL), 400);
    assert_int_equal(call(f, "GET", apps, "per_page=101", TOKEN, NULL, NULL), 400);
    assert_int_equal(call(f, "GET", apps, "page=0", TOKEN, NULL, NULL), 400);
    assert_int_equal(call(f, "GET", apps, "order=color", TOKEN, NULL, NULL), 400);
    assert_int_equal(call(f, "GET", apps, "direction=up", TOKEN, NULL, NULL), 400);
    assert_int_equal(
        call(f, "POST", "/client/v4/zones", NULL, TOKEN, "{\"name\":\"example.com\"}", NULL), 400);
    assert_int_equal(
        call(f, "POST", "/client/v4/zones", NULL, TOKEN, "{\"name\":\"-bad.com\"}", NULL), 400);
    assert_int_equal(call(f, "GET", "/client/v4/zones/00000000000000000000000000000000", NULL,
                          TOKEN, NULL, NULL),
                     404);
}

/* Found by fuzz/fuzz_api_request.c: a path id that is not UTF-8 went into the error
 * message, json_pack() refused it and the answer was a 500. */
static void test_paths_that_are_not_utf8(void **state)
{
    struct fixture *f = *state;
    char path[256];
    json_t *r;

    assert_int_equal(
        call(f, "GET", "/client/v4/zones/..\x14\x86\x86\x86\x86", NULL, TOKEN, NULL, &r), 404);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "errors"), 0), "message")),
                        "Could not route to /zones/..\x14????, perhaps your object identifier "
                        "is invalid?");
    json_decref(r);
    /* a valid character cut in two by the message's length limit */
    snprintf(path, sizeof(path), "/client/v4/zones/%s/spectrum/apps/%s", f->zone_id,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
    assert_int_equal(call(f, "GET", path, NULL, TOKEN, NULL, NULL), 404);
}

static void test_utf8_scrub(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"\x86", "?"},
        {"\xc0\x80", "??"},           /* overlong NUL */
        {"\xe0\x80\xaf", "???"},      /* overlong '/' */
        {"\xed\xa0\x80", "???"},      /* a UTF-16 surrogate */
        {"\xf4\x90\x80\x80", "????"}, /* above U+10FFFF */
        {"\xf5\x80", "??"},
        {"ab\xe2\x82", "ab??"}, /* cut short */
        {"\xc3\xa9\xc3", "\xc3\xa9?"},
    };
    char buf[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        envelope_utf8_scrub(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

static void test_router(void **state)
{
    static const struct router_route rs[] = {
        {"GET", "a/*/b"},
        {"PUT", "a/*/b"},
        {"GET", "a"},
    };
    struct router_match m;

    (void)state;
    assert_int_equal(router_match(rs, 3, "PUT", "/a/xyz/b/", &m), ROUTER_FOUND);
    assert_int_equal(m.route, 1);
    assert_string_equal(m.params[0], "xyz");
    assert_int_equal(router_match(rs, 3, "DELETE", "/a/xyz/b", &m), ROUTER_BAD_METHOD);
    assert_int_equal(router_match(rs, 3, "GET", "/a/xyz", &m), ROUTER_NO_ROUTE);
    assert_int_equal(router_match(rs, 3, "GET", "//a", &m), ROUTER_FOUND);
}

static void test_auth_helpers(void **state)
{
    unsigned p = 0;
    char bad[64], buf[256], tok[AUTH_TOKEN_NEW_LEN + 1];

    (void)state;
    assert_true(auth_token_is_well_formed(TOKEN));
    assert_false(auth_token_is_well_formed("tok_0123456789abcdefghijklmnopqrstuvwxyz!BCD"));
    assert_false(auth_token_is_well_formed("0123456789012345678901234567890123456789x"
                                           "0123456789012345678901234567890123456789"));
    assert_int_equal(auth_token_generate(tok), 0);
    assert_true(auth_token_is_well_formed(tok));
    assert_int_equal(auth_perms_parse("zone_read,firewall_write", &p, bad, sizeof(bad)), 0);
    assert_int_equal(p, AUTH_ZONE_READ | AUTH_FIREWALL_WRITE);
    auth_perms_format(p, buf, sizeof(buf));
    assert_string_equal(buf, "zone_read,firewall_write");
    assert_int_equal(auth_perms_parse("zone_read,dance", &p, bad, sizeof(bad)), -EINVAL);
    assert_string_equal(bad, "dance");
    assert_int_equal(auth_perms_parse("all", &p, bad, sizeof(bad)), 0);
    assert_int_equal(p, AUTH_ALL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_that_are_not_utf8, setup, teardown),
        cmocka_unit_test(test_utf8_scrub),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_auth_helpers),
    };
    log_set_level(LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
