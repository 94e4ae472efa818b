/* tests/unit/test_spp.c: src/proxy/spp.c, Cloudflare's Simple Proxy Protocol.
 *
 * Expected headers are written out by hand from the 38-byte layout in
 * ../shared/spec/spectrum-docs.md; addresses come from inet_pton() directly. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "helpers.h"

#include "proxy/spp.h"

/* 192.0.2.1:5000 received on 198.51.100.2:53 */
static const uint8_t hdr_v4[SPP_HEADER_LEN] = {
    0x56, 0xEC,                                                             /* magic */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, /* client */
    0xC0, 0x00, 0x02, 0x01,                                                 /* */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, /* proxy */
    0xC6, 0x33, 0x64, 0x02,                                                 /* */
    0x13, 0x88,                                                             /* client port */
    0x00, 0x35,                                                             /* proxy port */
};

/* [2001:db8::1]:443 received on [2001:db8::53]:53 */
static const uint8_t hdr_v6[SPP_HEADER_LEN] = {
    0x56, 0xEC,                                                             /* magic */
    0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* client */
    0x00, 0x00, 0x00, 0x01,                                                 /* */
    0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* proxy */
    0x00, 0x00, 0x00, 0x53,                                                 /* */
    0x01, 0xBB,                                                             /* client port */
    0x00, 0x35,                                                             /* proxy port */
};

static void test_encode_v4(void **state)
{
    struct sockaddr_storage client = test_ip_port("192.0.2.1", 5000),
                            proxy = test_ip_port("198.51.100.2", 53);
    uint8_t out[SPP_HEADER_LEN + 4];

    (void)state;
    memset(out, 0xA5, sizeof(out));
    spp_encode(&client, &proxy, out);
    assert_memory_equal(out, hdr_v4, SPP_HEADER_LEN);
    assert_int_equal(out[SPP_HEADER_LEN], 0xA5); /* writes exactly 38 bytes */
}

static void test_encode_v6(void **state)
{
    struct sockaddr_storage client = test_ip_port("2001:db8::1", 443),
                            proxy = test_ip_port("2001:db8::53", 53);
    uint8_t out[SPP_HEADER_LEN + 4];

    (void)state;
    memset(out, 0xA5, sizeof(out));
    spp_encode(&client, &proxy, out);
    assert_memory_equal(out, hdr_v6, SPP_HEADER_LEN);
    assert_int_equal(out[SPP_HEADER_LEN], 0xA5);
}

static void test_encode_mapped_equals_v4(void **state)
{
    /* A dual-stack socket reports the same client as ::ffff:192.0.2.1. */
    struct sockaddr_storage client = test_ip_port("::ffff:192.0.2.1", 5000),
                            proxy = test_ip_port("::ffff:198.51.100.2", 53);
    uint8_t out[SPP_HEADER_LEN];

    (void)state;
    spp_encode(&client, &proxy, out);
    assert_memory_equal(out, hdr_v4, SPP_HEADER_LEN);
}

static void test_encode_mixed_families(void **state)
{
    static const uint8_t want[SPP_HEADER_LEN] = {
        0x56, 0xEC,                                                             /* magic */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, /* client */
        0xCB, 0x00, 0x71, 0x09,                                                 /* */
        0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* proxy */
        0x00, 0x00, 0x00, 0x53,                                                 /* */
        0xFF, 0xFF,                                                             /* client port */
        0x00, 0x00,                                                             /* proxy port */
    };
    struct sockaddr_storage client = test_ip_port("203.0.113.9", 65535),
                            proxy = test_ip_port("2001:db8::53", 0);
    uint8_t out[SPP_HEADER_LEN];

    (void)state;
    spp_encode(&client, &proxy, out);
    assert_memory_equal(out, want, SPP_HEADER_LEN);
}

static void test_reply_ok_v4_and_v6(void **state)
{
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000),
                            c6 = test_ip_port("2001:db8::1", 443);
    struct sockaddr_storage c4_mapped = test_ip_port("::ffff:192.0.2.1", 5000);

    (void)state;
    assert_int_equal(spp_check_reply(hdr_v4, sizeof(hdr_v4), &c4), SPP_OK);
    assert_int_equal(spp_check_reply(hdr_v4, sizeof(hdr_v4), &c4_mapped), SPP_OK);
    assert_int_equal(spp_check_reply(hdr_v6, sizeof(hdr_v6), &c6), SPP_OK);
}

static void test_reply_ok_with_payload_and_any_proxy_fields(void **state)
{
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000);
    uint8_t buf[SPP_HEADER_LEN + 5];
    size_t i;

    (void)state;
    memcpy(buf, hdr_v4, SPP_HEADER_LEN);
    memcpy(buf + SPP_HEADER_LEN, "hello", 5);
    assert_int_equal(spp_check_reply(buf, sizeof(buf), &c4), SPP_OK);
    /* The proxy address (18..33) and port (36..37) are not checked. */
    for (i = 18; i < 34; i++) {
        buf[i] = (uint8_t)~buf[i];
    }
    buf[36] = 0x12;
    buf[37] = 0x34;
    assert_int_equal(spp_check_reply(buf, sizeof(buf), &c4), SPP_OK);
}

static void test_reply_short_at_every_length(void **state)
{
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000);
    size_t len;

    (void)state;
    /* A prefix of a perfect header is still short; short wins over bad magic too. */
    for (len = 0; len < SPP_HEADER_LEN; len++) {
        assert_int_equal(spp_check_reply(hdr_v4, len, &c4), SPP_SHORT);
        assert_int_equal(spp_check_reply(hdr_v6, len, &c4), SPP_SHORT);
    }
}

static void test_reply_bad_magic(void **state)
{
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000);
    static const uint8_t magics[][2] = {{0xEC, 0x56}, {0x56, 0xED}, {0x57, 0xEC}, {0, 0}};
    uint8_t buf[SPP_HEADER_LEN];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
        memcpy(buf, hdr_v4, sizeof(buf));
        buf[0] = magics[i][0];
        buf[1] = magics[i][1];
        assert_int_equal(spp_check_reply(buf, sizeof(buf), &c4), SPP_BAD_MAGIC);
    }
}

static void test_reply_wrong_client_each_address_byte(void **state)
{
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000),
                            c6 = test_ip_port("2001:db8::1", 443);
    uint8_t buf[SPP_HEADER_LEN];
    size_t i;

    (void)state;
    for (i = 2; i < 18; i++) {
        memcpy(buf, hdr_v4, sizeof(buf));
        buf[i] ^= 0x01;
        assert_int_equal(spp_check_reply(buf, sizeof(buf), &c4), SPP_WRONG_CLIENT);
        memcpy(buf, hdr_v6, sizeof(buf));
        buf[i] ^= 0x80;
        assert_int_equal(spp_check_reply(buf, sizeof(buf), &c6), SPP_WRONG_CLIENT);
    }
}

static void test_reply_wrong_client_port(void **state)
{
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000),
                            c4_other = test_ip_port("192.0.2.1", 5001);
    struct sockaddr_storage c4_swapped = test_ip_port("192.0.2.1", 0x8813); /* byte-swapped 5000 */
    uint8_t buf[SPP_HEADER_LEN];

    (void)state;
    assert_int_equal(spp_check_reply(hdr_v4, sizeof(hdr_v4), &c4_other), SPP_WRONG_CLIENT);
    assert_int_equal(spp_check_reply(hdr_v4, sizeof(hdr_v4), &c4_swapped), SPP_WRONG_CLIENT);
    memcpy(buf, hdr_v4, sizeof(buf));
    buf[34] ^= 0x01;
    assert_int_equal(spp_check_reply(buf, sizeof(buf), &c4), SPP_WRONG_CLIENT);
    memcpy(buf, hdr_v4, sizeof(buf));
    buf[35] ^= 0x01;
    assert_int_equal(spp_check_reply(buf, sizeof(buf), &c4), SPP_WRONG_CLIENT);
}

static void test_reply_other_clients(void **state)
{
    /* Another client, or the same four bytes in a form other than mapped. */
    struct sockaddr_storage other4 = test_ip_port("192.0.2.2", 5000),
                            other6 = test_ip_port("2001:db8::2", 443);
    struct sockaddr_storage compat = test_ip_port("::192.0.2.1", 5000); /* ::c000:201, not mapped */
    struct sockaddr_storage c4 = test_ip_port("192.0.2.1", 5000);

    (void)state;
    assert_int_equal(spp_check_reply(hdr_v4, sizeof(hdr_v4), &other4), SPP_WRONG_CLIENT);
    assert_int_equal(spp_check_reply(hdr_v6, sizeof(hdr_v6), &other6), SPP_WRONG_CLIENT);
    assert_int_equal(spp_check_reply(hdr_v4, sizeof(hdr_v4), &compat), SPP_WRONG_CLIENT);
    assert_int_equal(spp_check_reply(hdr_v6, sizeof(hdr_v6), &c4), SPP_WRONG_CLIENT);
}

static void test_reply_client_without_family(void **state)
{
    /* An all-zero header must not match a client that has no address at all. */
    struct sockaddr_storage none;
    uint8_t buf[SPP_HEADER_LEN];

    (void)state;
    memset(&none, 0, sizeof(none));
    memset(buf, 0, sizeof(buf));
    buf[0] = 0x56;
    buf[1] = 0xEC;
    assert_int_equal(spp_check_reply(buf, sizeof(buf), &none), SPP_WRONG_CLIENT);
}

static void test_encode_then_check_round_trip(void **state)
{
    struct sockaddr_storage client = test_ip_port("2001:db8::7", 1),
                            proxy = test_ip_port("192.0.2.53", 53);
    uint8_t out[SPP_HEADER_LEN];

    (void)state;
    spp_encode(&client, &proxy, out);
    assert_int_equal(spp_check_reply(out, sizeof(out), &client), SPP_OK);
    assert_int_equal(spp_check_reply(out, sizeof(out), &proxy), SPP_WRONG_CLIENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_v4),
        cmocka_unit_test(test_encode_v6),
        cmocka_unit_test(test_encode_mapped_equals_v4),
        cmocka_unit_test(test_encode_mixed_families),
        cmocka_unit_test(test_reply_ok_v4_and_v6),
        cmocka_unit_test(test_reply_ok_with_payload_and_any_proxy_fields),
        cmocka_unit_test(test_reply_short_at_every_length),
        cmocka_unit_test(test_reply_bad_magic),
        cmocka_unit_test(test_reply_wrong_client_each_address_byte),
        cmocka_unit_test(test_reply_wrong_client_port),
        cmocka_unit_test(test_reply_other_clients),
        cmocka_unit_test(test_reply_client_without_family),
        cmocka_unit_test(test_encode_then_check_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
