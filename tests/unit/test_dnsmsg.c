/* tests/unit/test_dnsmsg.c: src/dns/dnsmsg.c, the DNS query parser and reply encoder.
 *
 * Every expected message below is written out by hand from RFC 1035 4.1 and RFC
 * 6891 6.1, byte by byte, not produced by the code under test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "helpers.h"

#include "dns/dnsmsg.h"

/* ssh.example.com in wire form: 17 bytes */
#define QNAME                                                                                      \
    "\x03ssh\x07"                                                                                  \
    "example\x03"                                                                                  \
    "com\x00"
#define QNAME_LEN 17

/* A standard query, ID 0x1234, RD, one question, no other records. */
#define HDR_Q1 "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
/* The same with ARCOUNT 1. */
#define HDR_Q1_AR1 "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01"
#define TYPE_A "\x00\x01\x00\x01"
#define TYPE_AAAA "\x00\x1c\x00\x01"
/* OPT: root, type 41, payload 4096, ext-rcode 0, version 0, DO 0, no data */
#define OPT_4096 "\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"
/* OPT as we write it: payload 1232 (0x04d0) */
#define OPT_OURS "\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"

#define BYTES(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static void expect_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        for (size_t i = 0; i < got_len || i < want_len; i++) {
            int g = i < got_len ? got[i] : -1, w = i < want_len ? want[i] : -1;
            if (g != w)
                print_error("byte %zu: got %02x want %02x\n", i, (unsigned)g & 0xff,
                            (unsigned)w & 0xff);
        }
        fail_msg("reply differs: %zu bytes, want %zu", got_len, want_len);
    }
}

/* Parses <query> (expecting <status>) and encodes a reply with <r>. */
static size_t roundtrip(const uint8_t *query, size_t len, enum dnsmsg_status status,
                        const struct dnsmsg_reply *r, size_t max_len, uint8_t *out, size_t cap)
{
    struct dnsmsg_query q;

    assert_int_equal(dnsmsg_parse_query(query, len, &q), status);
    return dnsmsg_encode_reply(&q, r, max_len, out, cap);
}

static void test_a_answer(void **state)
{
    static const char query[] = HDR_Q1 QNAME TYPE_A;
    static const char want[] = "\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00" QNAME TYPE_A
                               "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x0a\x00\x05";
    struct sockaddr_storage addrs[] = {test_ip("::1"), test_ip("127.10.0.5")};
    struct dnsmsg_reply r = {.is_authoritative = true, .addrs = addrs, .n_addrs = 2, .ttl_s = 60};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_string_equal(q.qname, "ssh.example.com");
    assert_int_equal(q.qtype, DNSMSG_TYPE_A);
    assert_int_equal(q.qclass, DNSMSG_CLASS_IN);
    assert_int_equal(q.id, 0x1234);
    assert_true(q.is_rd);
    assert_false(q.has_edns);
    n = dnsmsg_encode_reply(&q, &r, dnsmsg_udp_limit(&q), out, sizeof(out));
    expect_bytes(out, n, BYTES(want));
}

static void test_aaaa_answer(void **state)
{
    static const char query[] = HDR_Q1 QNAME TYPE_AAAA;
    static const char want[] = "\x12\x34\x85\x00\x00\x01\x00\x02\x00\x00\x00\x00" QNAME TYPE_AAAA
                               "\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10"
                               "\xfd\x00\xab\xcd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07"
                               "\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10"
                               "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01";
    struct sockaddr_storage addrs[] = {test_ip("fd00:abcd::7"), test_ip("127.0.0.1"),
                                       test_ip("::1")};
    struct dnsmsg_reply r = {.is_authoritative = true, .addrs = addrs, .n_addrs = 3, .ttl_s = 60};
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    n = roundtrip(BYTES(query), DNSMSG_QUERY, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want));
}

static void test_nodata_for_other_types(void **state)
{
    /* MX (15) and ANY (255) for a name that has addresses: NOERROR, no records. */
    static const char mx[] = HDR_Q1 QNAME "\x00\x0f\x00\x01";
    static const char any[] = HDR_Q1 QNAME "\x00\xff\x00\x01";
    static const char want_mx[] =
        "\x12\x34\x85\x00\x00\x01\x00\x00\x00\x00\x00\x00" QNAME "\x00\x0f\x00\x01";
    static const char want_any[] =
        "\x12\x34\x85\x00\x00\x01\x00\x00\x00\x00\x00\x00" QNAME "\x00\xff\x00\x01";
    struct sockaddr_storage addrs[] = {test_ip("127.0.0.1"), test_ip("::1")};
    struct dnsmsg_reply r = {.is_authoritative = true, .addrs = addrs, .n_addrs = 2, .ttl_s = 60};
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    n = roundtrip(BYTES(mx), DNSMSG_QUERY, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want_mx));
    n = roundtrip(BYTES(any), DNSMSG_QUERY, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want_any));
}

static void test_nxdomain_and_refused(void **state)
{
    static const char query[] = HDR_Q1 QNAME TYPE_A;
    static const char nx[] = "\x12\x34\x85\x03\x00\x01\x00\x00\x00\x00\x00\x00" QNAME TYPE_A;
    static const char refused[] = "\x12\x34\x81\x05\x00\x01\x00\x00\x00\x00\x00\x00" QNAME TYPE_A;
    struct sockaddr_storage addrs[] = {test_ip("127.0.0.1")};
    struct dnsmsg_reply r = {.rcode = DNSMSG_NXDOMAIN, .is_authoritative = true, .ttl_s = 60};
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    n = roundtrip(BYTES(query), DNSMSG_QUERY, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(nx));
    /* Addresses given with an error rcode are not written. */
    r = (struct dnsmsg_reply){.rcode = DNSMSG_REFUSED, .addrs = addrs, .n_addrs = 1};
    n = roundtrip(BYTES(query), DNSMSG_QUERY, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(refused));
}

static void test_qdcount_not_one_is_formerr(void **state)
{
    static const char two[] =
        "\xbe\xef\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00" QNAME TYPE_A QNAME TYPE_A;
    static const char zero[] = "\xbe\xef\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    static const char want_two[] = "\xbe\xef\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00";
    static const char want_zero[] = "\xbe\xef\x80\x01\x00\x00\x00\x00\x00\x00\x00\x00";
    struct dnsmsg_reply r = {0};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(two), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_FORMERR);
    r.rcode = q.rcode;
    n = dnsmsg_encode_reply(&q, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want_two));
    assert_int_equal(dnsmsg_parse_query(BYTES(zero), &q), DNSMSG_REJECT);
    r.rcode = q.rcode;
    n = dnsmsg_encode_reply(&q, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want_zero));
}

static void test_opcode_not_query_is_notimp(void **state)
{
    /* opcode 5 (UPDATE), RD clear */
    static const char update[] = "\x00\x07\x28\x00\x00\x01\x00\x00\x00\x00\x00\x00" QNAME TYPE_A;
    static const char want[] = "\x00\x07\xa8\x04\x00\x00\x00\x00\x00\x00\x00\x00";
    struct dnsmsg_reply r = {0};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(update), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_NOTIMP);
    r.rcode = q.rcode;
    n = dnsmsg_encode_reply(&q, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want));
}

static void test_responses_and_runts_are_dropped(void **state)
{
    static const char response[] = "\x12\x34\x81\x00\x00\x01\x00\x00\x00\x00\x00\x00" QNAME TYPE_A;
    struct dnsmsg_query q;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(response), &q), DNSMSG_DROP);
    for (size_t len = 0; len < DNSMSG_HEADER_LEN; len++)
        assert_int_equal(dnsmsg_parse_query((const uint8_t *)HDR_Q1, len, &q), DNSMSG_DROP);
}

static void test_truncated_packets_are_formerr(void **state)
{
    static const char query[] = HDR_Q1_AR1 QNAME TYPE_A OPT_4096;
    uint8_t copy[sizeof(query)];
    struct dnsmsg_query q;

    (void)state;
    /* Each prefix is copied into a buffer of exactly its size, so ASan sees any
     * read past the end. */
    for (size_t len = DNSMSG_HEADER_LEN; len < sizeof(query) - 1; len++) {
        uint8_t *buf = test_malloc(len);

        memcpy(buf, query, len);
        assert_int_equal(dnsmsg_parse_query(buf, len, &q), DNSMSG_REJECT);
        assert_int_equal(q.rcode, DNSMSG_FORMERR);
        assert_false(q.has_question);
        test_free(buf);
    }
    memcpy(copy, query, sizeof(query) - 1);
    assert_int_equal(dnsmsg_parse_query(copy, sizeof(query) - 1, &q), DNSMSG_QUERY);
    assert_true(q.has_edns);
    assert_int_equal(q.edns_udp_size, 4096);
}

static void test_compression_loop_is_formerr(void **state)
{
    /* The name is a pointer to itself. */
    static const char self[] = HDR_Q1 "\xc0\x0c" TYPE_A;
    /* Two pointers pointing at each other: 12 -> 14 -> 12 ... */
    static const char pair[] = HDR_Q1 "\xc0\x0e\xc0\x0c" TYPE_A;
    /* A label, then a pointer back to the label: ssh.ssh.ssh... */
    static const char label_loop[] = HDR_Q1 "\x03ssh\xc0\x0c" TYPE_A;
    /* A pointer into the header. */
    static const char into_header[] = HDR_Q1 "\xc0\x02" TYPE_A;
    /* A pointer past the end. */
    static const char past_end[] = HDR_Q1 "\xc0\x40" TYPE_A;
    static const char want[] = "\x12\x34\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00";
    const struct {
        const char *msg;
        size_t len;
    } cases[] = {{self, sizeof(self) - 1},
                 {pair, sizeof(pair) - 1},
                 {label_loop, sizeof(label_loop) - 1},
                 {into_header, sizeof(into_header) - 1},
                 {past_end, sizeof(past_end) - 1}};
    struct dnsmsg_reply r = {.rcode = DNSMSG_FORMERR};
    uint8_t out[DNSMSG_REPLY_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dnsmsg_query q;
        size_t n;

        assert_int_equal(dnsmsg_parse_query((const uint8_t *)cases[i].msg, cases[i].len, &q),
                         DNSMSG_REJECT);
        assert_int_equal(q.rcode, DNSMSG_FORMERR);
        n = dnsmsg_encode_reply(&q, &r, DNSMSG_UDP_MAX, out, sizeof(out));
        expect_bytes(out, n, BYTES(want));
    }
}

static void test_compressed_question_is_followed_and_written_plain(void **state)
{
    /* QNAME "\x03ssh" then a pointer to offset 22, where "\x07example\x03com\x00"
     * sits after QTYPE/QCLASS (bytes 18..21); such trailing bytes are ignored. */
    static const char query[] = HDR_Q1 "\x03ssh\xc0\x16" TYPE_A "\x07"
                                       "example\x03"
                                       "com\x00";
    static const char want[] = "\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00" QNAME TYPE_A
                               "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01";
    struct sockaddr_storage addrs[] = {test_ip("127.0.0.1")};
    struct dnsmsg_reply r = {.is_authoritative = true, .addrs = addrs, .n_addrs = 1, .ttl_s = 60};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_string_equal(q.qname, "ssh.example.com");
    assert_int_equal(q.qtype, DNSMSG_TYPE_A);
    n = dnsmsg_encode_reply(&q, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want));
}

static void test_case_folded_and_echoed(void **state)
{
    static const char query[] = HDR_Q1 "\x03SsH\x07"
                                       "EXAMPLE\x03"
                                       "cOm\x00" TYPE_A;
    struct dnsmsg_reply r = {.rcode = DNSMSG_NXDOMAIN};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_string_equal(q.qname, "ssh.example.com");
    n = dnsmsg_encode_reply(&q, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    assert_int_equal(n, DNSMSG_HEADER_LEN + QNAME_LEN + 4);
    assert_memory_equal(out + DNSMSG_HEADER_LEN,
                        "\x03SsH\x07"
                        "EXAMPLE\x03"
                        "cOm\x00",
                        QNAME_LEN);
}

static void test_odd_bytes_are_escaped(void **state)
{
    /* Labels "a.b", "x\\", "\x07" and a root query. */
    static const char query[] = HDR_Q1 "\x03"
                                       "a.b\x02x\\\x01\x07\x00" TYPE_A;
    static const char root[] = HDR_Q1 "\x00" TYPE_A;
    struct dnsmsg_query q;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_string_equal(q.qname, "a\\.b.x\\\\.\\007");
    assert_int_equal(dnsmsg_parse_query(BYTES(root), &q), DNSMSG_QUERY);
    assert_string_equal(q.qname, ".");
    assert_int_equal(q.qname_wire_len, 1);
}

static void test_bad_labels_are_formerr(void **state)
{
    static const char ext_label[] = HDR_Q1 "\x41xx\x00" TYPE_A;
    uint8_t long_name[DNSMSG_HEADER_LEN + 300 + 4];
    size_t off = DNSMSG_HEADER_LEN;
    struct dnsmsg_query q;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(ext_label), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_FORMERR);
    /* 256 wire octets: four 63-byte labels (256 with lengths) and the root. */
    memcpy(long_name, HDR_Q1, DNSMSG_HEADER_LEN);
    for (int i = 0; i < 4; i++) {
        long_name[off++] = 63;
        memset(long_name + off, 'a', 63);
        off += 63;
    }
    long_name[off++] = 0;
    memcpy(long_name + off, TYPE_A, 4);
    off += 4;
    assert_int_equal(dnsmsg_parse_query(long_name, off, &q), DNSMSG_REJECT);
    /* 255 octets is fine: make the last label 61 bytes. */
    off = DNSMSG_HEADER_LEN + 3 * 64;
    long_name[off++] = 61;
    memset(long_name + off, 'b', 61);
    off += 61;
    long_name[off++] = 0;
    memcpy(long_name + off, TYPE_A, 4);
    off += 4;
    assert_int_equal(dnsmsg_parse_query(long_name, off, &q), DNSMSG_QUERY);
    assert_int_equal(q.qname_wire_len, 255);
}

static void test_edns_gets_minimal_opt(void **state)
{
    static const char query[] = HDR_Q1_AR1 QNAME TYPE_A OPT_4096;
    static const char want[] =
        "\x12\x34\x85\x00\x00\x01\x00\x01\x00\x00\x00\x01" QNAME TYPE_A
        "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01" OPT_OURS;
    struct sockaddr_storage addrs[] = {test_ip("127.0.0.1")};
    struct dnsmsg_reply r = {.is_authoritative = true, .addrs = addrs, .n_addrs = 1, .ttl_s = 60};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_int_equal(dnsmsg_udp_limit(&q), DNSMSG_EDNS_UDP_MAX);
    n = dnsmsg_encode_reply(&q, &r, dnsmsg_udp_limit(&q), out, sizeof(out));
    expect_bytes(out, n, BYTES(want));
}

static void test_edns_option_data_is_skipped(void **state)
{
    /* OPT with a 12-byte cookie option (code 10, length 8), payload 1400. */
    static const char query[] = HDR_Q1_AR1 QNAME TYPE_A "\x00\x00\x29\x05\x78\x00\x00\x00\x00"
                                                        "\x00\x0c\x00\x0a\x00\x08"
                                                        "abcdefgh";
    struct dnsmsg_query q;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_true(q.has_edns);
    assert_int_equal(q.edns_udp_size, 1400);
    assert_int_equal(dnsmsg_udp_limit(&q), 1232);
    q.edns_udp_size = 700;
    assert_int_equal(dnsmsg_udp_limit(&q), 700);
    q.edns_udp_size = 100;
    assert_int_equal(dnsmsg_udp_limit(&q), DNSMSG_UDP_MAX);
}

static void test_edns_errors(void **state)
{
    static const char two_opts[] =
        "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x02" QNAME TYPE_A OPT_4096 OPT_4096;
    static const char named_opt[] = HDR_Q1_AR1 QNAME TYPE_A "\x01x\x00\x00\x29\x10\x00\x00\x00"
                                                            "\x00\x00\x00\x00";
    static const char version1[] = HDR_Q1_AR1 QNAME TYPE_A "\x00\x00\x29\x10\x00\x00\x01\x00"
                                                           "\x00\x00\x00";
    /* BADVERS (16): header rcode 0, OPT extended rcode 1, question echoed. */
    static const char want_badvers[] =
        "\x12\x34\x81\x00\x00\x01\x00\x00\x00\x00\x00\x01" QNAME TYPE_A
        "\x00\x00\x29\x04\xd0\x01\x00\x00\x00\x00\x00";
    struct dnsmsg_reply r = {0};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(two_opts), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_FORMERR);
    assert_false(q.has_edns);
    assert_int_equal(dnsmsg_parse_query(BYTES(named_opt), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_FORMERR);
    assert_int_equal(dnsmsg_parse_query(BYTES(version1), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_BADVERS);
    r.rcode = q.rcode;
    n = dnsmsg_encode_reply(&q, &r, dnsmsg_udp_limit(&q), out, sizeof(out));
    expect_bytes(out, n, BYTES(want_badvers));
}

static void test_other_sections_are_walked(void **state)
{
    /* ANCOUNT 1 (a compressed A record), NSCOUNT 0, ARCOUNT 1 (the OPT). */
    static const char query[] =
        "\x12\x34\x01\x00\x00\x01\x00\x01\x00\x00\x00\x01" QNAME TYPE_A
        "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01" OPT_4096;
    /* The answer record claims more data than there is. */
    static const char short_rr[] = "\x12\x34\x01\x00\x00\x01\x00\x01\x00\x00\x00\x00" QNAME TYPE_A
                                   "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x05\x7f\x00\x00"
                                   "\x01";
    struct dnsmsg_query q;

    (void)state;
    assert_int_equal(dnsmsg_parse_query(BYTES(query), &q), DNSMSG_QUERY);
    assert_true(q.has_edns);
    assert_int_equal(dnsmsg_parse_query(BYTES(short_rr), &q), DNSMSG_REJECT);
    assert_int_equal(q.rcode, DNSMSG_FORMERR);
}

static void test_udp_truncation(void **state)
{
    static const char plain[] = HDR_Q1 QNAME TYPE_AAAA;
    static const char edns[] = HDR_Q1_AR1 QNAME TYPE_AAAA OPT_4096;
    /* No EDNS: 12 + 21 + 32 * 28 > 512, so TC and no records. */
    static const char want_tc[] =
        "\x12\x34\x87\x00\x00\x01\x00\x00\x00\x00\x00\x00" QNAME TYPE_AAAA;
    struct sockaddr_storage addrs[DNSMSG_MAX_ADDRS + 4];
    struct dnsmsg_reply r = {.is_authoritative = true, .addrs = addrs, .ttl_s = 60};
    struct dnsmsg_query q;
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        char text[64];

        snprintf(text, sizeof(text), "fd00::%zx", i + 1);
        addrs[i] = test_ip(text);
    }
    r.n_addrs = sizeof(addrs) / sizeof(addrs[0]);
    assert_int_equal(dnsmsg_parse_query(BYTES(plain), &q), DNSMSG_QUERY);
    n = dnsmsg_encode_reply(&q, &r, dnsmsg_udp_limit(&q), out, sizeof(out));
    expect_bytes(out, n, BYTES(want_tc));
    /* Over TCP all of them, capped at DNSMSG_MAX_ADDRS. */
    n = dnsmsg_encode_reply(&q, &r, DNSMSG_TCP_MAX, out, sizeof(out));
    assert_int_equal(n, 12 + QNAME_LEN + 4 + DNSMSG_MAX_ADDRS * 28);
    assert_int_equal(out[2], 0x85);
    assert_int_equal(out[7], DNSMSG_MAX_ADDRS);
    /* With EDNS they fit in 1232. */
    assert_int_equal(dnsmsg_parse_query(BYTES(edns), &q), DNSMSG_QUERY);
    n = dnsmsg_encode_reply(&q, &r, dnsmsg_udp_limit(&q), out, sizeof(out));
    assert_int_equal(n, 12 + QNAME_LEN + 4 + DNSMSG_MAX_ADDRS * 28 + 11);
    assert_int_equal(out[7], DNSMSG_MAX_ADDRS);
    /* A buffer too small for even the header and question. */
    assert_int_equal(dnsmsg_encode_reply(&q, &r, DNSMSG_TCP_MAX, out, 20), 0);
}

static void test_cd_echoed_class_kept(void **state)
{
    /* CD set, class CH (3): the parser accepts it; deciding is the responder's job. */
    static const char query[] =
        "\x12\x34\x01\x10\x00\x01\x00\x00\x00\x00\x00\x00" QNAME "\x00\x01\x00\x03";
    static const char want[] =
        "\x12\x34\x81\x15\x00\x01\x00\x00\x00\x00\x00\x00" QNAME "\x00\x01\x00\x03";
    struct dnsmsg_reply r = {.rcode = DNSMSG_REFUSED};
    uint8_t out[DNSMSG_REPLY_MAX];
    size_t n;

    (void)state;
    n = roundtrip(BYTES(query), DNSMSG_QUERY, &r, DNSMSG_UDP_MAX, out, sizeof(out));
    expect_bytes(out, n, BYTES(want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_answer),
        cmocka_unit_test(test_aaaa_answer),
        cmocka_unit_test(test_nodata_for_other_types),
        cmocka_unit_test(test_nxdomain_and_refused),
        cmocka_unit_test(test_qdcount_not_one_is_formerr),
        cmocka_unit_test(test_opcode_not_query_is_notimp),
        cmocka_unit_test(test_responses_and_runts_are_dropped),
        cmocka_unit_test(test_truncated_packets_are_formerr),
        cmocka_unit_test(test_compression_loop_is_formerr),
        cmocka_unit_test(test_compressed_question_is_followed_and_written_plain),
        cmocka_unit_test(test_case_folded_and_echoed),
        cmocka_unit_test(test_odd_bytes_are_escaped),
        cmocka_unit_test(test_bad_labels_are_formerr),
        cmocka_unit_test(test_edns_gets_minimal_opt),
        cmocka_unit_test(test_edns_option_data_is_skipped),
        cmocka_unit_test(test_edns_errors),
        cmocka_unit_test(test_other_sections_are_walked),
        cmocka_unit_test(test_udp_truncation),
        cmocka_unit_test(test_cd_echoed_class_kept),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
