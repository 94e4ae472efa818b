/* tests/unit/test_pp.c: src/proxy/pp.c, the PROXY protocol v1/v2 encoder.
 *
 * Every expected header below is written out by hand from the spec (haproxy
 * doc/proxy-protocol.txt sections 2.1 and 2.2), not produced by the code under test.
 * Addresses are built with inet_pton() directly so these tests do not lean on
 * net/addr.c for their inputs. */
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

#include "helpers.h"

#include "proxy/pp.h"

#define CANARY 0xA5

/* Encodes into a buffer of CANARY bytes with room to spare, checks the result is
 * exactly <want> and that nothing past it was touched. */
static void expect_header(int version, bool is_dgram, const struct sockaddr_storage *src,
                          const struct sockaddr_storage *dst, const void *want, size_t want_len)
{
    uint8_t buf[PP_MAX_LEN + 32];
    size_t i;

    memset(buf, CANARY, sizeof(buf));
    assert_int_equal(pp_encode(version, is_dgram, src, dst, buf, sizeof(buf)), (int)want_len);
    assert_memory_equal(buf, want, want_len);
    for (i = want_len; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], CANARY);
    }
}

static void expect_v1(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                      const char *want)
{
    expect_header(1, false, src, dst, want, strlen(want));
}

/* For every length below the header's, pp_encode() must fail with -ENOSPC and leave
 * the whole buffer alone; at the exact length it must succeed. */
static void expect_enospc_below(int version, bool is_dgram, const struct sockaddr_storage *src,
                                const struct sockaddr_storage *dst, size_t need)
{
    uint8_t buf[PP_MAX_LEN + 32];
    size_t len, i;

    assert_true(need <= PP_MAX_LEN);
    for (len = 0; len < need; len++) {
        memset(buf, CANARY, sizeof(buf));
        assert_int_equal(pp_encode(version, is_dgram, src, dst, buf, len), -ENOSPC);
        for (i = 0; i < sizeof(buf); i++) {
            assert_int_equal(buf[i], CANARY);
        }
    }
    memset(buf, CANARY, sizeof(buf));
    assert_int_equal(pp_encode(version, is_dgram, src, dst, buf, need), (int)need);
    assert_int_equal(buf[need], CANARY);
}

/* ---- v1 ---- */

static void test_v1_tcp4(void **state)
{
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 56324),
                            dst = test_ip_port("198.51.100.2", 443);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
}

static void test_v1_tcp6(void **state)
{
    struct sockaddr_storage src = test_ip_port("2001:db8::1", 5000),
                            dst = test_ip_port("2001:db8:0:1::2", 8443);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP6 2001:db8::1 2001:db8:0:1::2 5000 8443\r\n");
}

static void test_v1_tcp6_canonical_text(void **state)
{
    /* Written long-hand on input; the line must carry inet_ntop()'s short form. */
    struct sockaddr_storage src = test_ip_port("2001:0DB8:0000:0000:0000:0000:0000:00AB", 1),
                            dst = test_ip_port("0:0:0:0:0:0:0:1", 65535);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP6 2001:db8::ab ::1 1 65535\r\n");
}

static void test_v1_ports_zero_no_padding(void **state)
{
    struct sockaddr_storage src = test_ip_port("0.0.0.0", 0), dst = test_ip_port("10.0.0.1", 80);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP4 0.0.0.0 10.0.0.1 0 80\r\n");
}

static void test_v1_mapped_both_become_tcp4(void **state)
{
    struct sockaddr_storage src = test_ip_port("::ffff:192.0.2.1", 56324),
                            dst = test_ip_port("::ffff:198.51.100.2", 443);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
}

static void test_v1_mapped_src_plain_v4_dst(void **state)
{
    struct sockaddr_storage src = test_ip_port("::ffff:203.0.113.9", 40000),
                            dst = test_ip_port("198.51.100.2", 22);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP4 203.0.113.9 198.51.100.2 40000 22\r\n");
}

static void test_v1_mixed_v4_src_v6_dst(void **state)
{
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 1234),
                            dst = test_ip_port("2001:db8::2", 443);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1234 443\r\n");
}

static void test_v1_mixed_v6_src_v4_dst(void **state)
{
    struct sockaddr_storage src = test_ip_port("2001:db8::1", 5000),
                            dst = test_ip_port("198.51.100.2", 443);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 5000 443\r\n");
}

static void test_v1_mixed_mapped_src_v6_dst(void **state)
{
    /* Un-mapped, then mapped again because the other side is a real IPv6 address. */
    struct sockaddr_storage src = test_ip_port("::ffff:192.0.2.1", 1234),
                            dst = test_ip_port("2001:db8::2", 443);

    (void)state;
    expect_v1(&src, &dst, "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1234 443\r\n");
}

static void test_v1_worst_case_fits(void **state)
{
    static const char want[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n";
    struct sockaddr_storage src = test_ip_port("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
                            dst = test_ip_port("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
    struct sockaddr_storage src4 = test_ip_port("255.255.255.255", 65535),
                            dst4 = test_ip_port("255.255.255.255", 65535);

    (void)state;
    assert_int_equal(strlen(want), 104); /* spec 2.1: the TCP6 maximum */
    assert_true(strlen(want) <= PP_V1_MAX_LEN);
    expect_v1(&src, &dst, want);
    expect_v1(&src4, &dst4, "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
    assert_int_equal(strlen("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), 56);
}

static void test_v1_enospc_every_short_length(void **state)
{
    struct sockaddr_storage s4 = test_ip_port("192.0.2.1", 56324),
                            d4 = test_ip_port("198.51.100.2", 443);
    struct sockaddr_storage s6 = test_ip_port("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
                            d6 = test_ip_port("2001:db8::2", 1);

    (void)state;
    expect_enospc_below(1, false, &s4, &d4,
                        strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"));
    expect_enospc_below(1, false, &s6, &d6,
                        strlen("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                               "2001:db8::2 65535 1\r\n"));
}

static void test_v1_dgram_is_einval(void **state)
{
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 1),
                            dst = test_ip_port("198.51.100.2", 2);
    uint8_t buf[PP_MAX_LEN];
    size_t i;

    (void)state;
    memset(buf, CANARY, sizeof(buf));
    assert_int_equal(pp_encode(1, true, &src, &dst, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(pp_encode(1, true, &src, &dst, buf, 0), -EINVAL); /* before -ENOSPC */
    for (i = 0; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], CANARY);
    }
}

/* ---- v2 ---- */

#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

static void test_v2_tcp4(void **state)
{
    static const uint8_t want[] = {SIG,  0x21, 0x11, 0x00, 0x0C, 0xC0, 0x00, 0x02, 0x01,
                                   0xC6, 0x33, 0x64, 0x02, 0xDC, 0x04, 0x01, 0xBB};
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 56324),
                            dst = test_ip_port("198.51.100.2", 443);

    (void)state;
    assert_int_equal(sizeof(want), 28);
    expect_header(2, false, &src, &dst, want, sizeof(want));
}

static void test_v2_udp4(void **state)
{
    static const uint8_t want[] = {SIG,  0x21, 0x12, 0x00, 0x0C, 0xC0, 0x00, 0x02, 0x01,
                                   0xC6, 0x33, 0x64, 0x02, 0xDC, 0x04, 0x00, 0x35};
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 56324),
                            dst = test_ip_port("198.51.100.2", 53);

    (void)state;
    expect_header(2, true, &src, &dst, want, sizeof(want));
}

static void test_v2_tcp6(void **state)
{
    static const uint8_t want[] = {
        SIG,  0x21, 0x21, 0x00, 0x24,                                           /* header */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* src */
        0x00, 0x00, 0x00, 0x01,                                                 /* */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, /* dst */
        0x00, 0x00, 0x00, 0x02,                                                 /* */
        0x13, 0x88, 0x20, 0xFB,                                                 /* ports */
    };
    struct sockaddr_storage src = test_ip_port("2001:db8::1", 5000),
                            dst = test_ip_port("2001:db8:0:1::2", 8443);

    (void)state;
    assert_int_equal(sizeof(want), PP_V2_MAX_LEN);
    expect_header(2, false, &src, &dst, want, sizeof(want));
}

static void test_v2_udp6(void **state)
{
    static const uint8_t want[] = {
        SIG,  0x21, 0x22, 0x00, 0x24,                                           /* header */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* src */
        0x00, 0x00, 0x00, 0x01,                                                 /* */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, /* dst */
        0x00, 0x00, 0x00, 0x02,                                                 /* */
        0x13, 0x88, 0x00, 0x35,                                                 /* ports */
    };
    struct sockaddr_storage src = test_ip_port("2001:db8::1", 5000),
                            dst = test_ip_port("2001:db8:0:1::2", 53);

    (void)state;
    expect_header(2, true, &src, &dst, want, sizeof(want));
}

static void test_v2_mapped_both_become_inet(void **state)
{
    static const uint8_t want[] = {SIG,  0x21, 0x11, 0x00, 0x0C, 0xC0, 0x00, 0x02, 0x01,
                                   0xC6, 0x33, 0x64, 0x02, 0xDC, 0x04, 0x01, 0xBB};
    struct sockaddr_storage src = test_ip_port("::ffff:192.0.2.1", 56324),
                            dst = test_ip_port("::ffff:198.51.100.2", 443);

    (void)state;
    expect_header(2, false, &src, &dst, want, sizeof(want));
}

static void test_v2_mixed_maps_v4_side(void **state)
{
    static const uint8_t want[] = {
        SIG,  0x21, 0x21, 0x00, 0x24,                                           /* header */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, /* src */
        0xC0, 0x00, 0x02, 0x01,                                                 /* */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* dst */
        0x00, 0x00, 0x00, 0x02,                                                 /* */
        0x04, 0xD2, 0x01, 0xBB,                                                 /* ports */
    };
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 1234),
                            dst = test_ip_port("2001:db8::2", 443);
    struct sockaddr_storage msrc = test_ip_port("::ffff:192.0.2.1", 1234);

    (void)state;
    expect_header(2, false, &src, &dst, want, sizeof(want));
    expect_header(2, false, &msrc, &dst, want, sizeof(want)); /* un-mapped, then re-mapped */
}

static void test_v2_mixed_v6_src_v4_dst_udp(void **state)
{
    static const uint8_t want[] = {
        SIG,  0x21, 0x22, 0x00, 0x24,                                           /* header */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* src */
        0x00, 0x00, 0x00, 0x01,                                                 /* */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, /* dst */
        0xC6, 0x33, 0x64, 0x02,                                                 /* */
        0xFF, 0xFF, 0x00, 0x00,                                                 /* ports */
    };
    struct sockaddr_storage src = test_ip_port("2001:db8::1", 65535),
                            dst = test_ip_port("198.51.100.2", 0);

    (void)state;
    expect_header(2, true, &src, &dst, want, sizeof(want));
}

static void test_v2_enospc_every_short_length(void **state)
{
    struct sockaddr_storage s4 = test_ip_port("192.0.2.1", 1), d4 = test_ip_port("198.51.100.2", 2);
    struct sockaddr_storage s6 = test_ip_port("2001:db8::1", 1),
                            d6 = test_ip_port("2001:db8::2", 2);

    (void)state;
    expect_enospc_below(2, false, &s4, &d4, 28);
    expect_enospc_below(2, true, &s4, &d4, 28);
    expect_enospc_below(2, false, &s6, &d6, 52);
    expect_enospc_below(2, true, &s6, &d4, 52);
}

/* ---- shared ---- */

static void test_bad_version_is_einval(void **state)
{
    struct sockaddr_storage src = test_ip_port("192.0.2.1", 1),
                            dst = test_ip_port("198.51.100.2", 2);
    static const int bad[] = {0, 3, -1, 0x21};
    uint8_t buf[PP_MAX_LEN];
    size_t i;

    (void)state;
    memset(buf, CANARY, sizeof(buf));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pp_encode(bad[i], false, &src, &dst, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(pp_encode(bad[i], true, &src, &dst, buf, sizeof(buf)), -EINVAL);
    }
    for (i = 0; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], CANARY);
    }
}

static void test_bad_family_is_einval(void **state)
{
    struct sockaddr_storage good = test_ip_port("192.0.2.1", 1), unspec, unix_addr;
    uint8_t buf[PP_MAX_LEN];
    size_t i;
    int v;

    (void)state;
    memset(&unspec, 0, sizeof(unspec));
    memset(&unix_addr, 0, sizeof(unix_addr));
    unix_addr.ss_family = AF_UNIX;
    memset(buf, CANARY, sizeof(buf));
    for (v = 1; v <= 2; v++) {
        assert_int_equal(pp_encode(v, false, &unspec, &good, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(pp_encode(v, false, &good, &unspec, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(pp_encode(v, false, &unix_addr, &good, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(pp_encode(v, false, &good, &unix_addr, buf, sizeof(buf)), -EINVAL);
    }
    for (i = 0; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], CANARY);
    }
}

static void test_inputs_not_modified(void **state)
{
    struct sockaddr_storage src = test_ip_port("::ffff:192.0.2.1", 7),
                            dst = test_ip_port("198.51.100.2", 8);
    struct sockaddr_storage src0 = src, dst0 = dst;
    uint8_t buf[PP_MAX_LEN];

    (void)state;
    assert_int_equal(pp_encode(2, false, &src, &dst, buf, sizeof(buf)), 28);
    assert_int_equal(pp_encode(1, false, &src, &dst, buf, sizeof(buf)),
                     (int)strlen("PROXY TCP4 192.0.2.1 198.51.100.2 7 8\r\n"));
    assert_memory_equal(&src, &src0, sizeof(src));
    assert_memory_equal(&dst, &dst0, sizeof(dst));
}

static void test_max_len_constants(void **state)
{
    (void)state;
    assert_int_equal(PP_V1_MAX_LEN, 107);
    assert_int_equal(PP_V2_MAX_LEN, 52);
    assert_true(PP_MAX_LEN >= PP_V1_MAX_LEN);
    assert_true(PP_MAX_LEN >= PP_V2_MAX_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_tcp6_canonical_text),
        cmocka_unit_test(test_v1_ports_zero_no_padding),
        cmocka_unit_test(test_v1_mapped_both_become_tcp4),
        cmocka_unit_test(test_v1_mapped_src_plain_v4_dst),
        cmocka_unit_test(test_v1_mixed_v4_src_v6_dst),
        cmocka_unit_test(test_v1_mixed_v6_src_v4_dst),
        cmocka_unit_test(test_v1_mixed_mapped_src_v6_dst),
        cmocka_unit_test(test_v1_worst_case_fits),
        cmocka_unit_test(test_v1_enospc_every_short_length),
        cmocka_unit_test(test_v1_dgram_is_einval),
        cmocka_unit_test(test_v2_tcp4),
        cmocka_unit_test(test_v2_udp4),
        cmocka_unit_test(test_v2_tcp6),
        cmocka_unit_test(test_v2_udp6),
        cmocka_unit_test(test_v2_mapped_both_become_inet),
        cmocka_unit_test(test_v2_mixed_maps_v4_side),
        cmocka_unit_test(test_v2_mixed_v6_src_v4_dst_udp),
        cmocka_unit_test(test_v2_enospc_every_short_length),
        cmocka_unit_test(test_bad_version_is_einval),
        cmocka_unit_test(test_bad_family_is_einval),
        cmocka_unit_test(test_inputs_not_modified),
        cmocka_unit_test(test_max_len_constants),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
