/* tests/unit/test_addr.c: src/net/addr.c, parsing and formatting of addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "net/addr.h"

static const struct sockaddr_in *as_v4(const struct sockaddr_storage *a)
{
    return (const struct sockaddr_in *)a;
}

static const struct sockaddr_in6 *as_v6(const struct sockaddr_storage *a)
{
    return (const struct sockaddr_in6 *)a;
}

/* ---- addr_parse_hostport ---- */

static void test_hostport_v4_fields(void **state)
{
    static const uint8_t want[4] = {192, 0, 2, 1};
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_hostport("192.0.2.1:8080", &a), 0);
    assert_int_equal(a.ss_family, AF_INET);
    assert_memory_equal(&as_v4(&a)->sin_addr, want, 4);
    assert_int_equal(as_v4(&a)->sin_port, htons(8080));
    assert_int_equal(addr_port(&a), 8080);
}

static void test_hostport_v6_fields(void **state)
{
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_hostport("[2001:db8::1]:443", &a), 0);
    assert_int_equal(a.ss_family, AF_INET6);
    assert_memory_equal(&as_v6(&a)->sin6_addr, want, 16);
    assert_int_equal(as_v6(&a)->sin6_port, htons(443));
}

static void test_hostport_round_trips(void **state)
{
    static const char *const in[] = {
        "192.0.2.1:80",      "0.0.0.0:1",          "255.255.255.255:65535", "[2001:db8::1]:443",
        "[::1]:22",          "[::]:65535",         "[fe80::1:2:3:4]:8080",  "10.1.2.3:10000",
        "[2001:db8::]:9999", "[1:2:3:4:5:6:7:8]:1"};
    char out[ADDR_STRLEN];
    struct sockaddr_storage a;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        assert_int_equal(addr_parse_hostport(in[i], &a), 0);
        assert_int_equal(addr_format(&a, out, sizeof(out)), (int)strlen(in[i]));
        assert_string_equal(out, in[i]);
    }
}

static void test_hostport_non_canonical_v6_formats_canonical(void **state)
{
    char out[ADDR_STRLEN];
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_hostport("[2001:0DB8:0:0:0:0:0:0001]:7", &a), 0);
    assert_int_equal(addr_format(&a, out, sizeof(out)), (int)strlen("[2001:db8::1]:7"));
    assert_string_equal(out, "[2001:db8::1]:7");
}

static void test_hostport_mapped_formats_as_v4(void **state)
{
    char out[ADDR_STRLEN];
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_hostport("[::ffff:192.0.2.1]:80", &a), 0);
    assert_int_equal(a.ss_family, AF_INET6); /* parsing keeps what it was given */
    assert_int_equal(addr_format(&a, out, sizeof(out)), (int)strlen("192.0.2.1:80"));
    assert_string_equal(out, "192.0.2.1:80");
}

static void test_hostport_rejects(void **state)
{
    static const char *const bad[] = {
        "1.2.3.4:0",     /* port 0 */
        "1.2.3.4:65536", /* port out of range */
        "1.2.3.4:08",    /* leading zero */
        "1.2.3.4:00",
        "::1:22", /* IPv6 without brackets */
        "2001:db8::1:443",
        "[1.2.3.4]:22", /* brackets around IPv4 */
        "",
        ":",
        ":80",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:+80",
        "1.2.3.4:-1",
        "1.2.3.4: 80",
        "1.2.3.4:80 ",
        " 1.2.3.4:80",
        "1.2.3.4:8o",
        "1.2.3.4:99999999999999999999999",
        "1.2.3.4:80:80",
        "01.2.3.4:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "256.0.0.1:80",
        "localhost:80",
        "example.com:443",
        "[::1]",
        "[::1]:",
        "[::1]22",
        "[::1]:0",
        "[::1]:65536",
        "[]:22",
        "[::1:22",
        "::1]:22",
        "[[::1]]:22",
        "[::1%lo]:22",
        "[::1] :22",
        "[::g]:22",
    };
    struct sockaddr_storage a;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (addr_parse_hostport(bad[i], &a) != -EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

/* ---- addr_parse_ip ---- */

static void test_parse_ip_accepts(void **state)
{
    static const uint8_t want6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_ip("198.51.100.2", &a), 0);
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(as_v4(&a)->sin_addr.s_addr, htonl(0xC6336402));
    assert_int_equal(addr_port(&a), 0);
    assert_int_equal(addr_parse_ip("::ffff:192.0.2.1", &a), 0);
    assert_int_equal(a.ss_family, AF_INET6);
    assert_memory_equal(&as_v6(&a)->sin6_addr, want6, 16);
    assert_int_equal(addr_port(&a), 0);
}

static void test_parse_ip_rejects(void **state)
{
    static const char *const bad[] = {
        "",          "1.2.3.4:80",        "[::1]",      "::1 ",  " ::1",   "1.2.3", "1.2.3.4.5",
        "256.1.1.1", "01.2.3.4",          "1.2.3.4/24", "::1::", "::1%lo", "host",  "0x7f.1.1.1",
        ":::",       "1:2:3:4:5:6:7:8:9",
    };
    struct sockaddr_storage a;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (addr_parse_ip(bad[i], &a) != -EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

/* ---- formatting ---- */

static void test_format_enospc_boundaries(void **state)
{
    struct sockaddr_storage v4, v6;
    char out[ADDR_STRLEN];

    (void)state;
    assert_int_equal(addr_parse_hostport("192.0.2.1:80", &v4), 0);
    assert_int_equal(addr_parse_hostport("[2001:db8::1]:443", &v6), 0);
    /* addr_format: the text plus its NUL must fit. */
    assert_int_equal(addr_format(&v4, out, 13), 12);
    assert_string_equal(out, "192.0.2.1:80");
    assert_int_equal(addr_format(&v4, out, 12), -ENOSPC);
    assert_int_equal(addr_format(&v4, out, 1), -ENOSPC);
    assert_int_equal(addr_format(&v6, out, 18), 17);
    assert_string_equal(out, "[2001:db8::1]:443");
    assert_int_equal(addr_format(&v6, out, 17), -ENOSPC);
    /* addr_format_ip likewise. */
    assert_int_equal(addr_format_ip(&v4, out, 10), 9);
    assert_string_equal(out, "192.0.2.1");
    assert_int_equal(addr_format_ip(&v4, out, 9), -ENOSPC);
    assert_int_equal(addr_format_ip(&v6, out, 12), 11);
    assert_string_equal(out, "2001:db8::1");
    assert_int_equal(addr_format_ip(&v6, out, 11), -ENOSPC);
}

static void test_format_longest_fits_addr_strlen(void **state)
{
    static const char longest[] = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535";
    struct sockaddr_storage a;
    char out[ADDR_STRLEN];

    (void)state;
    /* inet_ntop never writes this form for a non-mapped address, but ADDR_STRLEN
     * must hold the longest text it can write; check the arithmetic. */
    assert_true(sizeof(longest) <= ADDR_STRLEN);
    assert_int_equal(addr_parse_hostport("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", &a), 0);
    assert_int_equal(addr_format(&a, out, sizeof(out)), 47);
    assert_string_equal(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

/* ---- helpers ---- */

static void test_unmap(void **state)
{
    static const uint8_t want[4] = {203, 0, 113, 9};
    struct sockaddr_storage a, b, before;

    (void)state;
    assert_int_equal(addr_parse_hostport("[::ffff:203.0.113.9]:5353", &a), 0);
    addr_unmap(&a);
    assert_int_equal(a.ss_family, AF_INET);
    assert_memory_equal(&as_v4(&a)->sin_addr, want, 4);
    assert_int_equal(addr_port(&a), 5353);

    /* Not mapped: left exactly as it was. */
    assert_int_equal(addr_parse_hostport("[::203.0.113.9]:5353", &b), 0);
    before = b;
    addr_unmap(&b);
    assert_memory_equal(&b, &before, sizeof(b));
    assert_int_equal(addr_parse_hostport("203.0.113.9:5353", &b), 0);
    before = b;
    addr_unmap(&b);
    assert_memory_equal(&b, &before, sizeof(b));
}

static void test_to_v6bytes(void **state)
{
    static const uint8_t want4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
    static const uint8_t want6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                      0,    0,    0,    0,    0, 0, 0, 0x42};
    struct sockaddr_storage a;
    uint8_t out[16];

    (void)state;
    assert_int_equal(addr_parse_hostport("192.0.2.1:1", &a), 0);
    addr_to_v6bytes(&a, out);
    assert_memory_equal(out, want4, 16);
    assert_int_equal(addr_parse_hostport("[2001:db8::42]:1", &a), 0);
    addr_to_v6bytes(&a, out);
    assert_memory_equal(out, want6, 16);
    assert_int_equal(addr_parse_hostport("[::ffff:192.0.2.1]:1", &a), 0);
    addr_to_v6bytes(&a, out);
    assert_memory_equal(out, want4, 16);
}

static void test_port_set_get_len(void **state)
{
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_ip("192.0.2.1", &a), 0);
    addr_set_port(&a, 65535);
    assert_int_equal(as_v4(&a)->sin_port, htons(65535));
    assert_int_equal(addr_port(&a), 65535);
    assert_int_equal(addr_len(&a), sizeof(struct sockaddr_in));
    assert_int_equal(addr_parse_ip("::1", &a), 0);
    addr_set_port(&a, 258);
    assert_int_equal(as_v6(&a)->sin6_port, htons(258));
    assert_int_equal(addr_port(&a), 258);
    assert_int_equal(addr_len(&a), sizeof(struct sockaddr_in6));
}

static void test_ip_equal_and_is_any(void **state)
{
    struct sockaddr_storage a, b;

    (void)state;
    assert_int_equal(addr_parse_hostport("192.0.2.1:1", &a), 0);
    assert_int_equal(addr_parse_hostport("192.0.2.1:2", &b), 0);
    assert_true(addr_ip_equal(&a, &b)); /* ports ignored */
    assert_false(addr_equal(&a, &b));   /* ... but not by addr_equal */
    assert_int_equal(addr_parse_hostport("192.0.2.1:1", &b), 0);
    assert_true(addr_equal(&a, &b));
    assert_int_equal(addr_parse_hostport("192.0.2.1:2", &b), 0);
    assert_int_equal(addr_parse_hostport("192.0.2.2:1", &b), 0);
    assert_false(addr_ip_equal(&a, &b));
    assert_int_equal(addr_parse_hostport("[::ffff:192.0.2.1]:1", &b), 0);
    assert_false(addr_ip_equal(&a, &b)); /* families differ */
    assert_int_equal(addr_parse_hostport("[2001:db8::1]:1", &a), 0);
    assert_int_equal(addr_parse_hostport("[2001:db8::1]:9", &b), 0);
    assert_true(addr_ip_equal(&a, &b));
    assert_false(addr_equal(&a, &b));
    assert_false(addr_is_any(&a));
    assert_int_equal(addr_parse_ip("0.0.0.0", &a), 0);
    assert_true(addr_is_any(&a));
    assert_int_equal(addr_parse_ip("::", &a), 0);
    assert_true(addr_is_any(&a));
    assert_int_equal(addr_parse_ip("0.0.0.1", &a), 0);
    assert_false(addr_is_any(&a));
}

/* Loopback as the kernel's tcp_tw_reuse = 2 counts it. */
static void test_is_loopback(void **state)
{
    static const char *const yes[] = {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.2"};
    static const char *const no[] = {
        "128.0.0.1", "126.255.255.255", "0.0.0.0", "::", "::2", "::ffff:10.0.0.1", "2001:db8::1"};
    struct sockaddr_storage a;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_int_equal(addr_parse_ip(yes[i], &a), 0);
        assert_true(addr_is_loopback(&a));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_int_equal(addr_parse_ip(no[i], &a), 0);
        assert_false(addr_is_loopback(&a));
    }
    a.ss_family = AF_UNIX;
    assert_false(addr_is_loopback(&a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport_v4_fields),
        cmocka_unit_test(test_is_loopback),
        cmocka_unit_test(test_hostport_v6_fields),
        cmocka_unit_test(test_hostport_round_trips),
        cmocka_unit_test(test_hostport_non_canonical_v6_formats_canonical),
        cmocka_unit_test(test_hostport_mapped_formats_as_v4),
        cmocka_unit_test(test_hostport_rejects),
        cmocka_unit_test(test_parse_ip_accepts),
        cmocka_unit_test(test_parse_ip_rejects),
        cmocka_unit_test(test_format_enospc_boundaries),
        cmocka_unit_test(test_format_longest_fits_addr_strlen),
        cmocka_unit_test(test_unmap),
        cmocka_unit_test(test_to_v6bytes),
        cmocka_unit_test(test_port_set_get_len),
        cmocka_unit_test(test_ip_equal_and_is_any),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
