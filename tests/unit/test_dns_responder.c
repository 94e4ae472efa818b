/* tests/unit/test_dns_responder.c: src/dns/responder.c without sockets: the name
 * table (merging, duplicates, wildcards, ancestors) and the choice of answer
 * (addresses, NODATA, NXDOMAIN, REFUSED), through responder_answer(). */
#include <arpa/inet.h>
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
#include "dns/responder.h"

/* The test zones: example.com (and its apex) and nothing else. */
static enum responder_zone zone_cb(void *ctx, const char *name, const char **apex)
{
    size_t n = strlen(name);

    (*(int *)ctx)++;
    *apex = "example.com";
    if (strcmp(name, "example.com") == 0)
        return RESPONDER_APEX;
    if (n > 12 && strcmp(name + n - 12, ".example.com") == 0)
        return RESPONDER_INSIDE;
    *apex = NULL;
    return RESPONDER_OUTSIDE;
}

/* Writes a query for <name> (dotted, no escapes) of <qtype> into <buf>. */
static size_t make_query(uint8_t *buf, const char *name, uint16_t qtype, uint16_t qclass)
{
    static const uint8_t hdr[] = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t off = sizeof(hdr);

    memcpy(buf, hdr, sizeof(hdr));
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);

        buf[off++] = (uint8_t)len;
        memcpy(buf + off, name, len);
        off += len;
        name += len + (dot ? 1 : 0);
    }
    buf[off++] = 0;
    buf[off++] = (uint8_t)(qtype >> 8);
    buf[off++] = (uint8_t)qtype;
    buf[off++] = (uint8_t)(qclass >> 8);
    buf[off++] = (uint8_t)qclass;
    return off;
}

struct answer {
    int rcode;
    bool is_aa, is_tc;
    int n;
    uint8_t rdata[DNSMSG_MAX_ADDRS][16];
    int n_soa;          /* SOA records, in the answer (a SOA query) or the authority */
    char soa_zone[256]; /* the owner of the SOA, dotted */
    uint32_t soa_minimum;
};

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the SOA record at <out + off> (its names pointers into the question, as
 * the responder writes them) and returns its length. */
static size_t check_soa(const uint8_t *out, size_t n, size_t off, struct answer *a)
{
    size_t at, len = 0;

    assert_true(off + 47 <= n);
    assert_int_equal(out[off] & 0xc0, 0xc0);
    at = (size_t)(out[off] & 0x3f) << 8 | out[off + 1];
    assert_int_equal(out[off + 2] << 8 | out[off + 3], DNSMSG_TYPE_SOA);
    assert_int_equal(out[off + 4] << 8 | out[off + 5], DNSMSG_CLASS_IN);
    assert_int_equal(get32(out + off + 6), RESPONDER_TTL_S);
    assert_int_equal(out[off + 10] << 8 | out[off + 11], 35);
    assert_memory_equal(out + off + 12, out + off, 2);         /* MNAME: the zone */
    assert_memory_equal(out + off + 14, "\012hostmaster", 11); /* RNAME */
    assert_memory_equal(out + off + 25, out + off, 2);
    a->soa_minimum = get32(out + off + 43);
    while (out[at] != 0) { /* the owner, read from the question */
        if (len)
            a->soa_zone[len++] = '.';
        memcpy(a->soa_zone + len, out + at + 1, out[at]);
        len += out[at];
        at += 1 + out[at];
    }
    a->soa_zone[len] = '\0';
    a->n_soa++;
    return 47;
}

/* Asks <r> and decodes the reply (which must echo the question and carry only
 * records of the asked type, each pointing at the question name). */
static struct answer ask(struct responder *r, const char *name, uint16_t qtype, uint16_t qclass,
                         bool is_tcp)
{
    uint8_t q[512], out[DNSMSG_REPLY_MAX];
    size_t qlen = make_query(q, name, qtype, qclass), n, off;
    struct answer a;
    size_t rdlen = qtype == DNSMSG_TYPE_A ? 4 : 16;

    memset(&a, 0, sizeof(a));
    n = responder_answer(r, q, qlen, is_tcp, out, sizeof(out));
    assert_true(n >= qlen);
    assert_memory_equal(out, q, 2);
    assert_memory_equal(out + 12, q + 12, qlen - 12);
    assert_int_equal(out[2] & 0x80, 0x80);
    a.rcode = out[3] & 0x0f;
    a.is_aa = out[2] & 0x04;
    a.is_tc = out[2] & 0x02;
    a.n = out[6] << 8 | out[7];
    assert_int_equal(out[4] << 8 | out[5], 1);
    off = qlen;
    if (qtype == DNSMSG_TYPE_SOA && a.n == 1) {
        off += check_soa(out, n, off, &a);
        a.n = 0;
    }
    for (int i = 0; i < a.n; i++) {
        assert_true(off + 12 + rdlen <= n);
        assert_int_equal(out[off], 0xc0);
        assert_int_equal(out[off + 1], 0x0c);
        assert_int_equal(out[off + 2] << 8 | out[off + 3], qtype);
        assert_int_equal((uint32_t)out[off + 6] << 24 | (uint32_t)out[off + 7] << 16 |
                             (uint32_t)out[off + 8] << 8 | out[off + 9],
                         RESPONDER_TTL_S);
        assert_int_equal(out[off + 10] << 8 | out[off + 11], rdlen);
        memcpy(a.rdata[i], out + off + 12, rdlen);
        off += 12 + rdlen;
    }
    for (int i = 0; i < (out[8] << 8 | out[9]); i++)
        off += check_soa(out, n, off, &a);
    assert_int_equal(off, n);
    return a;
}

static bool has_v4(const struct answer *a, const char *text)
{
    uint8_t want[4];

    inet_pton(AF_INET, text, want);
    for (int i = 0; i < a->n; i++)
        if (memcmp(a->rdata[i], want, 4) == 0)
            return true;
    return false;
}

static bool has_v6(const struct answer *a, const char *text)
{
    uint8_t want[16];

    inet_pton(AF_INET6, text, want);
    for (int i = 0; i < a->n; i++)
        if (memcmp(a->rdata[i], want, 16) == 0)
            return true;
    return false;
}

struct fixture {
    struct responder *r;
    int calls;
    struct sockaddr_storage ssh[5], ssh2[2], deep[1];
};

static int setup(void **state)
{
    static struct fixture f;
    struct responder_name names[3];

    memset(&f, 0, sizeof(f));
    f.r = responder_new(zone_cb, &f.calls);
    assert_non_null(f.r);
    f.ssh[0] = test_ip("127.0.0.1");
    f.ssh[1] = test_ip("::1");
    f.ssh[2] = test_ip("127.0.0.1"); /* a duplicate */
    f.ssh[3] = test_ip("0.0.0.0");   /* a wildcard: never an answer */
    f.ssh[4] = test_ip("::ffff:127.0.0.2");
    f.ssh2[0] = test_ip("127.10.0.9");
    f.ssh2[1] = test_ip("::1");
    f.deep[0] = test_ip("fd00:abcd::5");
    names[0] = (struct responder_name){"ssh.example.com", f.ssh, 5};
    names[1] = (struct responder_name){"SSH.Example.com.", f.ssh2, 2}; /* the same name */
    names[2] = (struct responder_name){"db.a.b.example.com", f.deep, 1};
    assert_int_equal(responder_set_names(f.r, names, 3), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    responder_free(f->r);
    return 0;
}

static void test_a_merged_deduplicated(void **state)
{
    struct fixture *f = *state;
    struct answer a = ask(f->r, "ssh.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);

    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_true(a.is_aa);
    assert_int_equal(a.n, 3);
    assert_true(has_v4(&a, "127.0.0.1"));
    assert_true(has_v4(&a, "127.0.0.2")); /* unmapped */
    assert_true(has_v4(&a, "127.10.0.9"));
    assert_int_equal(f->calls, 0); /* app names never ask the zone callback */
}

static void test_aaaa_and_case(void **state)
{
    struct fixture *f = *state;
    struct answer a = ask(f->r, "sSh.EXAMPLE.com", DNSMSG_TYPE_AAAA, DNSMSG_CLASS_IN, true);

    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_int_equal(a.n, 1);
    assert_true(has_v6(&a, "::1"));
    a = ask(f->r, "db.a.b.example.com", DNSMSG_TYPE_AAAA, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.n, 1);
    assert_true(has_v6(&a, "fd00:abcd::5"));
}

static void test_nodata(void **state)
{
    struct fixture *f = *state;
    struct answer a;

    a = ask(f->r, "db.a.b.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_true(a.is_aa);
    assert_int_equal(a.n, 0);
    a = ask(f->r, "ssh.example.com", 16 /* TXT */, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_int_equal(a.n, 0);
    /* Ancestors of app names exist (empty non-terminals), and so does the apex. */
    a = ask(f->r, "a.b.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_int_equal(a.n, 0);
    a = ask(f->r, "b.example.com", DNSMSG_TYPE_AAAA, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    a = ask(f->r, "example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_true(a.is_aa);
}

static void test_nxdomain_inside_refused_outside(void **state)
{
    struct fixture *f = *state;
    struct answer a;

    a = ask(f->r, "nope.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NXDOMAIN);
    assert_true(a.is_aa);
    assert_int_equal(a.n, 0);
    a = ask(f->r, "x.ssh.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NXDOMAIN);
    a = ask(f->r, "ssh.example.org", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_REFUSED);
    assert_false(a.is_aa);
    /* "com" is an ancestor in the table but outside every zone. */
    a = ask(f->r, "com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_REFUSED);
    /* Another class than IN. */
    a = ask(f->r, "ssh.example.com", DNSMSG_TYPE_A, 3 /* CH */, false);
    assert_int_equal(a.rcode, DNSMSG_REFUSED);
}

/* RFC 2308: NXDOMAIN and NODATA carry the zone's SOA in the authority section (its
 * minimum is the negative-caching TTL); answers with records and REFUSED do not. */
static void test_negative_answers_carry_soa(void **state)
{
    struct fixture *f = *state;
    struct answer a;
    static const struct {
        const char *name;
        uint16_t qtype;
        int rcode;
    } negative[] = {
        {"nope.example.com", DNSMSG_TYPE_A, DNSMSG_NXDOMAIN},
        {"x.ssh.example.com", DNSMSG_TYPE_AAAA, DNSMSG_NXDOMAIN},
        {"db.a.b.example.com", DNSMSG_TYPE_A, DNSMSG_NOERROR}, /* app name, no IPv4 */
        {"ssh.example.com", 16 /* TXT */, DNSMSG_NOERROR},
        {"ssh.example.com", DNSMSG_TYPE_SOA, DNSMSG_NOERROR}, /* not a zone's name */
        {"a.b.example.com", DNSMSG_TYPE_A, DNSMSG_NOERROR},   /* empty non-terminal */
        {"example.com", DNSMSG_TYPE_A, DNSMSG_NOERROR},       /* the apex */
    };

    for (size_t i = 0; i < sizeof(negative) / sizeof(negative[0]); i++) {
        a = ask(f->r, negative[i].name, negative[i].qtype, DNSMSG_CLASS_IN, false);
        assert_int_equal(a.rcode, negative[i].rcode);
        assert_int_equal(a.n, 0);
        assert_int_equal(a.n_soa, 1);
        assert_string_equal(a.soa_zone, "example.com");
        assert_int_equal(a.soa_minimum, RESPONDER_TTL_S);
    }
    /* a SOA query for the zone's name: the SOA is the answer */
    a = ask(f->r, "example.com", DNSMSG_TYPE_SOA, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NOERROR);
    assert_int_equal(a.n_soa, 1);
    assert_string_equal(a.soa_zone, "example.com");
    /* answers with records, and refusals, carry none */
    f->calls = 0;
    a = ask(f->r, "ssh.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.n_soa, 0);
    assert_int_equal(f->calls, 0);
    a = ask(f->r, "ssh.example.org", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_REFUSED);
    assert_int_equal(a.n_soa, 0);
}

static void test_replace_table(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_storage one = test_ip("127.10.3.4");
    struct responder_name n = {"new.example.com", &one, 1};
    struct answer a;

    assert_int_equal(responder_set_names(f->r, &n, 1), 0);
    a = ask(f->r, "new.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.n, 1);
    assert_true(has_v4(&a, "127.10.3.4"));
    a = ask(f->r, "ssh.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NXDOMAIN);
    assert_int_equal(responder_set_names(f->r, NULL, 0), 0);
    a = ask(f->r, "new.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN, false);
    assert_int_equal(a.rcode, DNSMSG_NXDOMAIN);
}

static void test_udp_truncates_tcp_does_not(void **state)
{
    struct sockaddr_storage many[DNSMSG_MAX_ADDRS];
    struct responder_name n = {"many.example.com", many, DNSMSG_MAX_ADDRS};
    struct fixture *f = *state;
    struct answer a;

    for (int i = 0; i < DNSMSG_MAX_ADDRS; i++) {
        char text[32];

        snprintf(text, sizeof(text), "fd00::%x", i + 1);
        many[i] = test_ip(text);
    }
    assert_int_equal(responder_set_names(f->r, &n, 1), 0);
    a = ask(f->r, "many.example.com", DNSMSG_TYPE_AAAA, DNSMSG_CLASS_IN, false);
    assert_true(a.is_tc);
    assert_int_equal(a.n, 0);
    a = ask(f->r, "many.example.com", DNSMSG_TYPE_AAAA, DNSMSG_CLASS_IN, true);
    assert_false(a.is_tc);
    assert_int_equal(a.n, DNSMSG_MAX_ADDRS);
}

static void test_no_callback_means_refused(void **state)
{
    struct responder *r = responder_new(NULL, NULL);
    uint8_t q[512], out[DNSMSG_REPLY_MAX];
    size_t qlen = make_query(q, "x.example.com", DNSMSG_TYPE_A, DNSMSG_CLASS_IN), n;

    (void)state;
    assert_non_null(r);
    n = responder_answer(r, q, qlen, false, out, sizeof(out));
    assert_int_equal(n, qlen);
    assert_int_equal(out[3] & 0x0f, DNSMSG_REFUSED);
    /* A response is never answered. */
    q[2] |= 0x80;
    assert_int_equal(responder_answer(r, q, qlen, false, out, sizeof(out)), 0);
    responder_free(r);
    responder_free(NULL);
}

static void test_name_in_zone(void **state)
{
    bool apex = false;

    (void)state;
    assert_true(responder_name_in_zone("example.com", "example.com", &apex));
    assert_true(apex);
    apex = false;
    assert_true(responder_name_in_zone("ssh.example.com", "example.com", &apex));
    assert_false(apex);
    assert_true(responder_name_in_zone("a.b.example.com", "example.com", &apex));
    assert_false(responder_name_in_zone("badexample.com", "example.com", &apex));
    assert_false(responder_name_in_zone("example.com", "ssh.example.com", &apex));
    assert_false(responder_name_in_zone("com", "example.com", &apex));
    assert_false(responder_name_in_zone(".example.com", "example.com", &apex));
    /* an escaped dot is part of a label: "a.example" + ".com" is one label short */
    assert_false(responder_name_in_zone("a\\.example.com", "example.com", &apex));
    assert_false(responder_name_in_zone("x.a\\.example.com", "example.com", &apex));
    /* an escaped backslash before a real dot does not escape it */
    assert_true(responder_name_in_zone("a\\\\.example.com", "example.com", &apex));
    assert_false(apex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_merged_deduplicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aaaa_and_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nxdomain_inside_refused_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_answers_carry_soa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_truncates_tcp_does_not, setup, teardown),
        cmocka_unit_test(test_no_callback_means_refused),
        cmocka_unit_test(test_name_in_zone),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
