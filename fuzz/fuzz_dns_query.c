/* fuzz/fuzz_dns_query.c: the DNS query parser (src/dns/dnsmsg.c) and the replies
 * written for what it accepts, directly and through the responder's lookup.
 *
 * Traps when a parse reads outside the input (ASan), and when a reply is not a
 * well-formed DNS message: every count matching its section, the question echoed
 * uncompressed, records only of the asked type pointing at the question, nothing
 * after the last record, no more bytes than the transport allows, and the echoed
 * question parsing back to the same name and type. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dns/dnsmsg.h"
#include "dns/responder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* for -Wmissing-prototypes */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Checks <out> (<n> bytes) as a reply to <q> written within <limit>. */
/* A SOA record at <off>: its owner, MNAME and RNAME's tail point at a label boundary
 * of the question name, as the encoder writes them. Returns the offset after it. */
static size_t check_soa(const struct dnsmsg_query *q, const uint8_t *out, size_t n, size_t off)
{
    size_t at, b = DNSMSG_HEADER_LEN;

    CHECK(off + DNSMSG_SOA_LEN <= n);
    CHECK((out[off] & 0xC0) == 0xC0);
    at = (size_t)(out[off] & 0x3F) << 8 | out[off + 1];
    while (b < at && out[b] != 0) /* a label boundary, not the root */
        b += 1u + out[b];
    CHECK(b == at && out[b] != 0 && at < DNSMSG_HEADER_LEN + q->qname_wire_len);
    CHECK(get16(out + off + 2) == DNSMSG_TYPE_SOA && get16(out + off + 4) == DNSMSG_CLASS_IN);
    CHECK(get16(out + off + 10) == DNSMSG_SOA_LEN - 12);
    CHECK(memcmp(out + off + 12, out + off, 2) == 0);
    CHECK(out[off + 14] == 10 && memcmp(out + off + 15, "hostmaster", 10) == 0);
    CHECK(memcmp(out + off + 25, out + off, 2) == 0);
    return off + DNSMSG_SOA_LEN;
}

static void check_reply(const struct dnsmsg_query *q, const uint8_t *out, size_t n, size_t limit)
{
    size_t off = DNSMSG_HEADER_LEN, qd, an, ns, ar;
    int rcode;

    CHECK(n >= DNSMSG_HEADER_LEN && n <= limit);
    CHECK(get16(out) == q->id);
    CHECK(out[2] & 0x80);
    CHECK(((out[2] >> 3) & 0x0F) == q->opcode);
    rcode = out[3] & 0x0F;
    qd = get16(out + 4);
    an = get16(out + 6);
    ns = get16(out + 8);
    ar = get16(out + 10);
    CHECK(qd == (q->has_question ? 1u : 0u) && ns <= 1 && ar == (q->has_edns ? 1u : 0u));
    if (ns || an)
        CHECK(qd); /* records point into the question */
    if ((out[2] & 0x02) || rcode != 0)
        CHECK(an == 0);
    if (qd) {
        /* The question, uncompressed: labels up to the root within 255 octets. */
        size_t start = off;

        for (;;) {
            CHECK(off < n);
            CHECK(out[off] < 64);
            if (out[off] == 0)
                break;
            off += 1u + out[off];
        }
        off++;
        CHECK(off - start == q->qname_wire_len && off - start <= DNSMSG_NAME_WIRE_MAX);
        CHECK(memcmp(out + start, q->qname_wire, q->qname_wire_len) == 0);
        CHECK(off + 4 <= n && get16(out + off) == q->qtype && get16(out + off + 2) == q->qclass);
        off += 4;
    }
    for (size_t i = 0; i < an; i++) {
        size_t rdlen;

        CHECK(off + 12 <= n);
        if (q->qtype == DNSMSG_TYPE_SOA) { /* only the zone's own SOA, for its name */
            CHECK(an == 1 && ns == 0 && out[off] == 0xC0 && out[off + 1] == DNSMSG_HEADER_LEN);
            off = check_soa(q, out, n, off);
            continue;
        }
        CHECK(out[off] == 0xC0 && out[off + 1] == DNSMSG_HEADER_LEN);
        CHECK(get16(out + off + 2) == q->qtype && get16(out + off + 4) == DNSMSG_CLASS_IN);
        rdlen = get16(out + off + 10);
        CHECK(rdlen == (q->qtype == DNSMSG_TYPE_A ? 4u : 16u));
        off += 12 + rdlen;
        CHECK(off <= n);
    }
    if (ns) {
        CHECK(an == 0 || q->qtype == DNSMSG_TYPE_SOA);
        off = check_soa(q, out, n, off);
    }
    if (ar) {
        CHECK(off + 11 <= n && out[off] == 0 && get16(out + off + 1) == DNSMSG_TYPE_OPT);
        CHECK(get16(out + off + 9) == 0);
        off += 11;
    }
    CHECK(off == n);

    if (qd) {
        /* The reply, turned back into a query, asks the same question. */
        uint8_t again[DNSMSG_REPLY_MAX];
        struct dnsmsg_query q2;

        memcpy(again, out, n);
        again[2] &= 0x7F;
        CHECK(dnsmsg_parse_query(again, n, &q2) == DNSMSG_QUERY);
        CHECK(strcmp(q2.qname, q->qname) == 0 && q2.qtype == q->qtype);
    }
}

/* Test zones: every name of two labels or more is inside the zone of its last two
 * labels (dots escaped as "\\." are inside a label), so negative answers carry SOAs
 * for whatever names the fuzzer makes. */
static enum responder_zone zone_of(void *ctx, const char *name, const char **apex)
{
    const char *dots[2] = {NULL, NULL};
    size_t bs = 0;

    (void)ctx;
    for (const char *s = name; *s; s++) {
        if (*s == '.' && bs % 2 == 0) {
            dots[1] = dots[0];
            dots[0] = s;
        }
        bs = *s == '\\' ? bs + 1 : 0;
    }
    if (!dots[0])
        return RESPONDER_OUTSIDE;
    *apex = dots[1] ? dots[1] + 1 : name;
    return dots[1] ? RESPONDER_INSIDE : RESPONDER_APEX;
}

static struct responder *table(void)
{
    static struct responder *r;
    static struct sockaddr_storage addrs[4];

    if (!r) {
        struct responder_name names[] = {{"ssh.example.com", addrs, 4},
                                         {"a.b.example.com", addrs + 1, 2}};

        ((struct sockaddr_in *)&addrs[0])->sin_family = AF_INET;
        inet_pton(AF_INET, "127.10.0.1", &((struct sockaddr_in *)&addrs[0])->sin_addr);
        ((struct sockaddr_in6 *)&addrs[1])->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "fd00:abcd::1", &((struct sockaddr_in6 *)&addrs[1])->sin6_addr);
        ((struct sockaddr_in *)&addrs[2])->sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &((struct sockaddr_in *)&addrs[2])->sin_addr);
        ((struct sockaddr_in6 *)&addrs[3])->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "::1", &((struct sockaddr_in6 *)&addrs[3])->sin6_addr);
        r = responder_new(zone_of, NULL);
        if (!r || responder_set_names(r, names, 2) != 0)
            __builtin_trap();
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sockaddr_storage many[DNSMSG_MAX_ADDRS];
    uint8_t out[DNSMSG_REPLY_MAX];
    struct dnsmsg_reply r = {.ttl_s = 60, .addrs = many, .n_addrs = DNSMSG_MAX_ADDRS};
    struct dnsmsg_query q;
    enum dnsmsg_status st;
    size_t n;

    if (many[0].ss_family == 0) {
        for (size_t i = 0; i < DNSMSG_MAX_ADDRS; i++) {
            many[i].ss_family = i % 3 ? AF_INET6 : AF_INET;
            ((uint8_t *)&many[i])[8] = (uint8_t)i;
        }
    }
    st = dnsmsg_parse_query(data, size, &q);
    CHECK(strlen(q.qname) < sizeof(q.qname));
    if (st != DNSMSG_DROP) {
        r.rcode = st == DNSMSG_REJECT ? q.rcode : DNSMSG_NOERROR;
        r.is_authoritative = size & 1;
        r.soa_labels = (unsigned)(size >> 2) % 4;
        r.soa_serial = (uint32_t)size;
        n = dnsmsg_encode_reply(&q, &r, dnsmsg_udp_limit(&q), out, sizeof(out));
        check_reply(&q, out, n, dnsmsg_udp_limit(&q));
        n = dnsmsg_encode_reply(&q, &r, DNSMSG_TCP_MAX, out, sizeof(out));
        check_reply(&q, out, n, DNSMSG_TCP_MAX);
        n = responder_answer(table(), data, size, size & 2, out, sizeof(out));
        check_reply(&q, out, n, size & 2 ? DNSMSG_TCP_MAX : dnsmsg_udp_limit(&q));
    } else {
        CHECK(responder_answer(table(), data, size, false, out, sizeof(out)) == 0);
    }
    return 0;
}
