/* tests/unit/test_edgepool.c: src/proxy/edgepool.c, the edge address allocator:
 * prefix parsing, stable and distinct addresses per name, connectivity, taken
 * addresses skipped, and a full pool refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "helpers.h"

#include "proxy/edgepool.h"

static const char *text(const struct sockaddr_storage *a, char *buf, size_t len)
{
    const void *p = a->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;

    assert_non_null(inet_ntop(a->ss_family, p, buf, (socklen_t)len));
    return buf;
}

static struct edgepool_cidr cidr(const char *s, int family)
{
    struct edgepool_cidr c;
    char err[160];

    if (edgepool_parse_cidr(s, family, &c, err, sizeof(err)) != 0)
        fail_msg("%s: %s", s, err);
    return c;
}

static uint32_t v4_host(const struct sockaddr_storage *a)
{
    return ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
}

static void test_parse_cidr(void **state)
{
    static const struct {
        const char *s;
        int family;
        const char *err; /* NULL: valid */
    } cases[] = {
        {"127.10.0.0/16", AF_INET, NULL},
        {"10.0.0.0/8", AF_INET, NULL},
        {"192.0.2.4/30", AF_INET, NULL},
        {"fd00:abcd::/64", AF_INET6, NULL},
        {"2001::/16", AF_INET6, NULL},
        {"fd00::100/120", AF_INET6, NULL},
        {"127.10.0.1/16", AF_INET, "has host bits set: the network is 127.10.0.0/16"},
        {"fd00:abcd::1/64", AF_INET6, "has host bits set: the network is fd00:abcd::/64"},
        {"127.10.0.0/31", AF_INET, "prefix length out of range: 8 to 30"},
        {"127.0.0.0/7", AF_INET, "prefix length out of range"},
        {"fd00::/15", AF_INET6, "prefix length out of range: 16 to 120"},
        {"fd00::/121", AF_INET6, "prefix length out of range"},
        {"fd00:abcd::/64", AF_INET, "is an IPv6 prefix: this pool takes IPv4"},
        {"127.10.0.0/16", AF_INET6, "is an IPv4 prefix: this pool takes IPv6"},
        {"127.10.0.0", AF_INET, "CIDR notation"},
        {"127.10.0.0/", AF_INET, "CIDR notation"},
        {"127.10.0.0/16x", AF_INET, "CIDR notation"},
        {"127.10.0.0/+16", AF_INET, "CIDR notation"},
        {"127.10.0.0/0016", AF_INET, "CIDR notation"},
        {"/16", AF_INET, "CIDR notation"},
        {"localhost/16", AF_INET, "CIDR notation"},
        {"", AF_INET6, "CIDR notation"},
    };
    char err[160], buf[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct edgepool_cidr c;
        int rc = edgepool_parse_cidr(cases[i].s, cases[i].family, &c, err, sizeof(err));

        if (!cases[i].err) {
            if (rc != 0)
                fail_msg("%s: %s", cases[i].s, err);
            edgepool_format_cidr(&c, buf, sizeof(buf));
            assert_string_equal(buf, cases[i].s);
        } else {
            assert_int_equal(rc, -EINVAL);
            if (!strstr(err, cases[i].err))
                fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].s, err, cases[i].err);
        }
    }
}

static void test_stable_and_deterministic(void **state)
{
    struct edgepool_cidr v4 = cidr("127.10.0.0/16", AF_INET), v6 = cidr("fd00:abcd::/64", AF_INET6);
    struct edgepool_req reqs[] = {{"ssh.example.com", true, true},
                                  {"game.example.com", true, true}};
    struct edgepool_req reversed[] = {reqs[1], reqs[0]};
    struct sockaddr_storage a[2], b[2];
    struct edgepool *p1, *p2, *p3;
    char err[256];

    (void)state;
    p1 = edgepool_next(NULL, &v4, &v6, reqs, 2, NULL, 0, err, sizeof(err));
    p2 = edgepool_next(NULL, &v4, &v6, reversed, 2, NULL, 0, err, sizeof(err));
    assert_non_null(p1);
    assert_non_null(p2);
    assert_int_equal(edgepool_size(p1), 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(edgepool_lookup(p1, reqs[i].name, a, 2), 2);
        assert_int_equal(edgepool_lookup(p2, reqs[i].name, b, 2), 2);
        assert_int_equal(a[0].ss_family, AF_INET);
        assert_int_equal(a[1].ss_family, AF_INET6);
        assert_memory_equal(a, b, sizeof(a));
    }
    /* A reload with one name fewer and one more keeps the survivor's addresses. */
    assert_int_equal(edgepool_lookup(p1, "ssh.example.com", a, 2), 2);
    reqs[1].name = "new.example.com";
    p3 = edgepool_next(p1, &v4, &v6, reqs, 2, NULL, 0, err, sizeof(err));
    assert_non_null(p3);
    assert_int_equal(edgepool_lookup(p3, "ssh.example.com", b, 2), 2);
    assert_memory_equal(a, b, sizeof(a));
    assert_int_equal(edgepool_lookup(p3, "game.example.com", b, 2), 0);
    assert_int_equal(edgepool_lookup(p3, "nope.example.com", b, 2), 0);
    assert_int_equal(edgepool_lookup(NULL, "ssh.example.com", b, 2), 0);
    edgepool_free(p1);
    edgepool_free(p2);
    edgepool_free(p3);
    edgepool_free(NULL);
}

static void test_distinct_and_in_range(void **state)
{
    enum { N = 3000 };
    struct edgepool_cidr v4 = cidr("127.10.0.0/20", AF_INET), v6 = cidr("fd00:abcd::/64", AF_INET6);
    struct edgepool_req *reqs = calloc(N, sizeof(*reqs));
    char(*names)[32] = calloc(N, sizeof(*names));
    uint8_t *seen = calloc(1u << 12, 1);
    struct edgepool *p;
    char err[256];

    (void)state;
    assert_non_null(reqs);
    assert_non_null(names);
    assert_non_null(seen);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "app%d.example.com", i);
        reqs[i] = (struct edgepool_req){names[i], true, i % 2 == 0};
    }
    p = edgepool_next(NULL, &v4, &v6, reqs, N, NULL, 0, err, sizeof(err));
    if (!p)
        fail_msg("%s", err);
    for (int i = 0; i < N; i++) {
        struct sockaddr_storage a[2];
        size_t n = edgepool_lookup(p, names[i], a, 2);
        uint32_t host;

        assert_int_equal(n, i % 2 == 0 ? 2 : 1);
        host = v4_host(&a[0]);
        assert_int_equal(host >> 12, 0x7f0a0); /* inside 127.10.0.0/20 */
        host &= 0xfff;
        assert_true(host != 0 && host != 0xfff); /* not network, not broadcast */
        assert_int_equal(seen[host], 0);
        seen[host] = 1;
        if (n == 2) {
            const uint8_t *b = ((const struct sockaddr_in6 *)&a[1])->sin6_addr.s6_addr;
            static const uint8_t zero[8];

            assert_memory_equal(b, "\xfd\x00\xab\xcd\x00\x00\x00\x00", 8);
            assert_memory_not_equal(b + 8, zero, 8);
        }
    }
    edgepool_free(p);
    free(reqs);
    free(names);
    free(seen);
}

static void test_connectivity_and_sharing(void **state)
{
    struct edgepool_cidr v4 = cidr("127.10.0.0/16", AF_INET), v6 = cidr("fd00:abcd::/64", AF_INET6);
    /* Two apps share "shared": one wants IPv4 only, the other IPv6 only; the name
     * gets both. "v6only" wants IPv6 alone. */
    struct edgepool_req reqs[] = {{"shared.example.com", true, false},
                                  {"v6only.example.com", false, true},
                                  {"shared.example.com", false, true}};
    struct sockaddr_storage a[2];
    struct edgepool *p;
    char err[256];

    (void)state;
    p = edgepool_next(NULL, &v4, &v6, reqs, 3, NULL, 0, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(edgepool_size(p), 2);
    assert_int_equal(edgepool_lookup(p, "shared.example.com", a, 2), 2);
    assert_int_equal(a[0].ss_family, AF_INET);
    assert_int_equal(a[1].ss_family, AF_INET6);
    assert_int_equal(edgepool_lookup(p, "shared.example.com", a, 1), 1); /* cap honoured */
    assert_int_equal(edgepool_lookup(p, "v6only.example.com", a, 2), 1);
    assert_int_equal(a[0].ss_family, AF_INET6);
    edgepool_free(p);

    /* Without an IPv6 pool, names get IPv4 only. */
    p = edgepool_next(NULL, &v4, NULL, reqs, 3, NULL, 0, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(edgepool_lookup(p, "shared.example.com", a, 2), 1);
    assert_int_equal(a[0].ss_family, AF_INET);
    assert_int_equal(edgepool_lookup(p, "v6only.example.com", a, 2), 0);
    edgepool_free(p);
}

static void test_skips_taken(void **state)
{
    /* 192.0.2.0/30 has two usable addresses, .1 and .2. */
    struct edgepool_cidr v4 = cidr("192.0.2.0/30", AF_INET);
    struct edgepool_req one = {"a.example.com", true, false};
    struct sockaddr_storage a[1], reserved[2];
    struct edgepool *p;
    char err[256], buf[64];

    (void)state;
    p = edgepool_next(NULL, &v4, NULL, &one, 1, NULL, 0, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(edgepool_lookup(p, "a.example.com", a, 1), 1);
    edgepool_free(p);
    /* Reserve the address it took (and one outside the pool): it gets the other. */
    reserved[0] = a[0];
    reserved[1] = test_ip("127.0.0.1");
    p = edgepool_next(NULL, &v4, NULL, &one, 1, reserved, 2, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(edgepool_lookup(p, "a.example.com", a, 1), 1);
    assert_false(v4_host(&a[0]) == v4_host(&reserved[0]));
    assert_true(strcmp(text(&a[0], buf, sizeof(buf)), "192.0.2.1") == 0 ||
                strcmp(buf, "192.0.2.2") == 0);
    edgepool_free(p);
}

static void test_collision_keeps_first_holder(void **state)
{
    /* In a pool of two, the second name always collides or not; either way the
     * first name keeps its address when the second arrives, whatever the order. */
    struct edgepool_cidr v4 = cidr("192.0.2.0/30", AF_INET);
    struct edgepool_req first = {"zzz.example.com", true, false};
    struct edgepool_req both[] = {{"aaa.example.com", true, false}, first};
    struct sockaddr_storage a[1], b[1], c[1];
    struct edgepool *p1, *p2;
    char err[256];

    (void)state;
    p1 = edgepool_next(NULL, &v4, NULL, &first, 1, NULL, 0, err, sizeof(err));
    assert_non_null(p1);
    assert_int_equal(edgepool_lookup(p1, "zzz.example.com", a, 1), 1);
    p2 = edgepool_next(p1, &v4, NULL, both, 2, NULL, 0, err, sizeof(err));
    assert_non_null(p2);
    assert_int_equal(edgepool_lookup(p2, "zzz.example.com", b, 1), 1);
    assert_int_equal(edgepool_lookup(p2, "aaa.example.com", c, 1), 1);
    assert_int_equal(v4_host(&a[0]), v4_host(&b[0]));
    assert_true(v4_host(&b[0]) != v4_host(&c[0]));
    edgepool_free(p1);
    edgepool_free(p2);
}

static void test_pool_change_moves_names(void **state)
{
    struct edgepool_cidr v4a = cidr("127.10.0.0/16", AF_INET), v4b = cidr("127.20.0.0/16", AF_INET);
    struct edgepool_req one = {"a.example.com", true, true};
    struct sockaddr_storage a[2];
    struct edgepool *p1, *p2;
    char err[256];

    (void)state;
    p1 = edgepool_next(NULL, &v4a, NULL, &one, 1, NULL, 0, err, sizeof(err));
    p2 = edgepool_next(p1, &v4b, NULL, &one, 1, NULL, 0, err, sizeof(err));
    assert_non_null(p1);
    assert_non_null(p2);
    assert_int_equal(edgepool_lookup(p2, "a.example.com", a, 2), 1);
    assert_int_equal(v4_host(&a[0]) >> 16, 0x7f14);
    edgepool_free(p1);
    edgepool_free(p2);
}

struct saved {
    struct edgepool_pair v[8];
    char names[8][32];
    int n;
};

static int save_pair(void *ctx, const char *name, const struct sockaddr_storage *addr)
{
    struct saved *sv = ctx;

    assert_true(sv->n < 8);
    snprintf(sv->names[sv->n], sizeof(sv->names[0]), "%s", name);
    sv->v[sv->n].name = sv->names[sv->n];
    sv->v[sv->n].addr = *addr;
    sv->n++;
    return 0;
}

/* Two names whose hashes pick the same address of a two-address pool: placed one
 * after the other (b, then a) each holds what it got; placed fresh in name order
 * (a restart without saved state) they swap. A map saved with edgepool_each() and
 * given back through edgepool_restore() keeps them where they were. */
static void test_restore_keeps_collided_names(void **state)
{
    struct edgepool_cidr v4 = cidr("127.10.0.0/30", AF_INET);
    struct edgepool *first = NULL, *running = NULL, *fresh = NULL, *restored, *again;
    struct sockaddr_storage want[2], got[2];
    char a[32], b[32], err[256];
    struct saved sv = {0};
    bool found = false;

    (void)state;
    for (int i = 0; i < 100 && !found; i++) {
        for (int j = i + 1; j < 100 && !found; j++) {
            struct edgepool_req rb = {b, true, false},
                                both[2] = {{a, true, false}, {b, true, false}};

            snprintf(a, sizeof(a), "n%02d.example.com", i);
            snprintf(b, sizeof(b), "n%02d.example.com", j);
            first = edgepool_next(NULL, &v4, NULL, &rb, 1, NULL, 0, err, sizeof(err));
            running = edgepool_next(first, &v4, NULL, both, 2, NULL, 0, err, sizeof(err));
            fresh = edgepool_next(NULL, &v4, NULL, both, 2, NULL, 0, err, sizeof(err));
            assert_non_null(first);
            assert_non_null(running);
            assert_non_null(fresh);
            assert_int_equal(edgepool_lookup(running, b, want, 1), 1);
            assert_int_equal(edgepool_lookup(fresh, b, got, 1), 1);
            found = v4_host(&want[0]) != v4_host(&got[0]);
            edgepool_free(first);
            edgepool_free(fresh);
            if (!found)
                edgepool_free(running);
        }
    }
    assert_true(found);
    assert_int_equal(edgepool_each(running, save_pair, &sv), 0);
    assert_int_equal(sv.n, 2);
    /* a pair from another pool, and one of a family with no pool, are left out */
    sv.v[sv.n].name = "x.example.com";
    sv.v[sv.n++].addr = test_ip("127.99.0.1");
    sv.v[sv.n].name = "y.example.com";
    sv.v[sv.n++].addr = test_ip("fd00::7");
    restored = edgepool_restore(&v4, NULL, sv.v, (size_t)sv.n);
    assert_non_null(restored);
    assert_int_equal(edgepool_size(restored), 2);
    {
        struct edgepool_req both[2] = {{a, true, false}, {b, true, false}};

        again = edgepool_next(restored, &v4, NULL, both, 2, NULL, 0, err, sizeof(err));
    }
    assert_non_null(again);
    for (int k = 0; k < 2; k++) {
        const char *name = k ? b : a;

        assert_int_equal(edgepool_lookup(running, name, want, 1), 1);
        assert_int_equal(edgepool_lookup(again, name, got, 1), 1);
        assert_int_equal(v4_host(&want[0]), v4_host(&got[0]));
    }
    edgepool_free(running);
    edgepool_free(restored);
    edgepool_free(again);
}

static void test_exhaustion(void **state)
{
    struct edgepool_cidr v4 = cidr("192.0.2.0/30", AF_INET), v6 = cidr("fd00::/120", AF_INET6);
    struct edgepool_req three[] = {{"a.example.com", true, false},
                                   {"b.example.com", true, false},
                                   {"c.example.com", true, false}};
    struct sockaddr_storage reserved = test_ip("192.0.2.1");
    struct edgepool *p;
    char err[256];

    (void)state;
    p = edgepool_next(NULL, &v4, &v6, three, 3, NULL, 0, err, sizeof(err));
    assert_null(p);
    assert_int_equal(errno, ENOSPC);
    assert_non_null(strstr(err, "edge.pool_v4 192.0.2.0/30 is full: 2 usable addresses"));
    /* Two names fit, unless one address is reserved. */
    p = edgepool_next(NULL, &v4, &v6, three, 2, NULL, 0, err, sizeof(err));
    assert_non_null(p);
    edgepool_free(p);
    p = edgepool_next(NULL, &v4, &v6, three, 2, &reserved, 1, err, sizeof(err));
    assert_null(p);
    assert_non_null(strstr(err, "(1 of them reserved)"));
}

static void test_v6_small_pool_distinct(void **state)
{
    /* fd00::/120: 255 usable (::1 .. ::ff); 255 names fill it exactly. */
    enum { N = 255 };
    struct edgepool_cidr v6 = cidr("fd00::/120", AF_INET6);
    struct edgepool_req reqs[N + 1];
    char names[N + 1][32];
    uint8_t seen[256] = {0};
    struct edgepool *p;
    char err[256];

    (void)state;
    for (int i = 0; i <= N; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d.example.com", i);
        reqs[i] = (struct edgepool_req){names[i], true, true};
    }
    p = edgepool_next(NULL, NULL, &v6, reqs, N, NULL, 0, err, sizeof(err));
    if (!p)
        fail_msg("%s", err);
    for (int i = 0; i < N; i++) {
        struct sockaddr_storage a[2];
        const uint8_t *b;

        assert_int_equal(edgepool_lookup(p, names[i], a, 2), 1);
        b = ((const struct sockaddr_in6 *)&a[0])->sin6_addr.s6_addr;
        assert_int_not_equal(b[15], 0);
        assert_int_equal(seen[b[15]], 0);
        seen[b[15]] = 1;
    }
    edgepool_free(p);
    assert_null(edgepool_next(NULL, NULL, &v6, reqs, N + 1, NULL, 0, err, sizeof(err)));
}

static void test_check_bindable(void **state)
{
    struct sockaddr_storage lo = test_ip("127.0.0.1"), doc = test_ip("192.0.2.77");

    (void)state;
    assert_int_equal(edgepool_check_bindable(&lo), 0);
    assert_int_equal(edgepool_check_bindable(&doc), -EADDRNOTAVAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_cidr),
        cmocka_unit_test(test_stable_and_deterministic),
        cmocka_unit_test(test_distinct_and_in_range),
        cmocka_unit_test(test_connectivity_and_sharing),
        cmocka_unit_test(test_skips_taken),
        cmocka_unit_test(test_collision_keeps_first_holder),
        cmocka_unit_test(test_pool_change_moves_names),
        cmocka_unit_test(test_restore_keeps_collided_names),
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_v6_small_pool_distinct),
        cmocka_unit_test(test_check_bindable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
