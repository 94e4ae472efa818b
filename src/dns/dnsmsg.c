/* src/dns/dnsmsg.c: parse a DNS query, write the reply (RFC 1035 4.1, RFC 6891).
 *
 * A query is read in one pass over the message, every read checked against its
 * length first:
 *
 *   header (12) | question: QNAME QTYPE QCLASS | answer, authority: skipped |
 *   additional: at most one OPT (its payload size and version), others skipped
 *
 * Only the question name may use compression pointers that we follow; there is
 * nothing before it to point at except itself or later bytes, so a pointer is
 * followed only to an offset inside the message past the header, at most
 * NAME_MAX_JUMPS times: a loop runs out of jumps and is FORMERR. Names in the other
 * sections are skipped, never followed, so they cannot loop.
 *
 * A reply is built in a single forward write: the header, the question exactly as
 * it arrived but uncompressed (so a pointer in the query cannot dangle in the
 * reply), one record per address whose owner is a pointer to the question name
 * (0xC00C), and a minimal OPT (our payload size, version 0, no options) when the
 * query had one. If that does not fit the client's limit, the records go and TC is
 * set, and the client retries over TCP (RFC 2181 9).
 *
 * Left out on purpose: EDNS options (cookies, client subnet, padding) are skipped,
 * not answered; no SOA in negative answers (the responder has no zone data), so
 * resolvers do not cache them; DNSSEC. */
#include "dns/dnsmsg.h"

#include <netinet/in.h>
#include <string.h>

#define NAME_MAX_JUMPS 127 /* a name has at most 127 labels, so no more pointers */
#define OPT_LEN 11         /* root name, type, class, TTL, RDLENGTH 0 */
#define RR_FIXED_LEN 10    /* type, class, TTL, RDLENGTH */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p = put16(p, (uint16_t)(v >> 16));
    return put16(p, (uint16_t)v);
}

/* Appends the presentation form of one label byte to <text> (escaped as in RFC 4343,
 * lower-cased). <*n> is the length so far; the caller guarantees room for 4 more. */
static void text_put(char *text, size_t *n, uint8_t c)
{
    static const char digits[] = "0123456789";

    if (c >= 'A' && c <= 'Z')
        c = (uint8_t)(c - 'A' + 'a');
    if (c == '.' || c == '\\') {
        text[(*n)++] = '\\';
        text[(*n)++] = (char)c;
    } else if (c > 0x20 && c < 0x7f) {
        text[(*n)++] = (char)c;
    } else {
        text[(*n)++] = '\\';
        text[(*n)++] = digits[c / 100];
        text[(*n)++] = digits[c / 10 % 10];
        text[(*n)++] = digits[c % 10];
    }
}

/* Reads the question name starting at <*off>, following pointers (see the essay),
 * into q->qname_wire and q->qname. On success <*off> is just past the name as it
 * sits in the message. Returns 0 or -1 (malformed). */
static int read_qname(const uint8_t *buf, size_t len, size_t *off, struct dnsmsg_query *q)
{
    size_t pos = *off, end = 0, wlen = 0, tlen = 0;
    int jumps = 0;

    for (;;) {
        uint8_t c;

        if (pos >= len)
            return -1;
        c = buf[pos];
        if ((c & 0xC0) == 0xC0) {
            size_t target;

            if (pos + 1 >= len)
                return -1;
            target = (size_t)(c & 0x3F) << 8 | buf[pos + 1];
            if (jumps == 0)
                end = pos + 2;
            if (++jumps > NAME_MAX_JUMPS || target < DNSMSG_HEADER_LEN || target >= len ||
                target == pos)
                return -1;
            pos = target;
            continue;
        }
        if (c & 0xC0)
            return -1; /* 0x40 and 0x80: extended and reserved label types */
        if (c == 0)
            break;
        /* Room for this label and the root's zero byte within 255 octets. */
        if (wlen + 1 + c + 1 > DNSMSG_NAME_WIRE_MAX || pos + 1 + c > len)
            return -1;
        if (tlen > 0)
            q->qname[tlen++] = '.';
        memcpy(&q->qname_wire[wlen], &buf[pos], (size_t)c + 1);
        wlen += (size_t)c + 1;
        for (size_t i = 0; i < c; i++)
            text_put(q->qname, &tlen, buf[pos + 1 + i]);
        pos += (size_t)c + 1;
    }
    q->qname_wire[wlen++] = 0;
    q->qname_wire_len = wlen;
    if (tlen == 0)
        q->qname[tlen++] = '.';
    q->qname[tlen] = '\0';
    *off = jumps ? end : pos + 1;
    return 0;
}

/* Skips a name in a section other than the question: labels up to the root or to
 * a pointer, which ends the name in place. Returns 0 or -1. */
static int skip_name(const uint8_t *buf, size_t len, size_t *off)
{
    size_t pos = *off, wlen = 0;

    for (;;) {
        uint8_t c;

        if (pos >= len)
            return -1;
        c = buf[pos];
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= len)
                return -1;
            *off = pos + 2;
            return 0;
        }
        if (c & 0xC0)
            return -1;
        wlen += (size_t)c + 1;
        if (wlen > DNSMSG_NAME_WIRE_MAX)
            return -1;
        pos += (size_t)c + 1;
        if (c == 0) {
            *off = pos;
            return 0;
        }
    }
}

/* Walks <count> records from <*off>; in the additional section (<is_additional>)
 * it reads the OPT record into <q>. Returns 0 or -1 (malformed). */
static int walk_records(const uint8_t *buf, size_t len, size_t *off, unsigned count,
                        bool is_additional, struct dnsmsg_query *q)
{
    for (unsigned i = 0; i < count; i++) {
        size_t name_at = *off, rdlen;
        const uint8_t *rr;

        if (skip_name(buf, len, off) != 0 || len - *off < RR_FIXED_LEN)
            return -1;
        rr = &buf[*off];
        rdlen = get16(rr + 8);
        if (len - *off - RR_FIXED_LEN < rdlen)
            return -1;
        if (is_additional && get16(rr) == DNSMSG_TYPE_OPT) {
            /* RFC 6891 6.1.1: one OPT at most, owned by the root. */
            if (q->has_edns || *off != name_at + 1 || buf[name_at] != 0)
                return -1;
            q->has_edns = true;
            q->edns_udp_size = get16(rr + 2);
            q->edns_version = rr[5];
        }
        *off += RR_FIXED_LEN + rdlen;
    }
    return 0;
}

static enum dnsmsg_status reject(struct dnsmsg_query *q, int rcode)
{
    q->rcode = rcode;
    if (rcode != DNSMSG_BADVERS) {
        q->has_question = false; /* a malformed question is not worth echoing */
        q->has_edns = false;
    }
    return DNSMSG_REJECT;
}

enum dnsmsg_status dnsmsg_parse_query(const uint8_t *buf, size_t len, struct dnsmsg_query *q)
{
    size_t off = DNSMSG_HEADER_LEN;

    memset(q, 0, sizeof(*q));
    if (len < DNSMSG_HEADER_LEN)
        return DNSMSG_DROP;
    q->id = get16(buf);
    if (buf[2] & 0x80)
        return DNSMSG_DROP; /* a response: answering it could start a loop */
    q->opcode = (uint8_t)((buf[2] >> 3) & 0x0F);
    q->is_rd = buf[2] & 0x01;
    q->is_cd = buf[3] & 0x10;
    if (q->opcode != 0)
        return reject(q, DNSMSG_NOTIMP);
    if (get16(buf + 4) != 1)
        return reject(q, DNSMSG_FORMERR);
    if (read_qname(buf, len, &off, q) != 0 || len - off < 4)
        return reject(q, DNSMSG_FORMERR);
    q->qtype = get16(buf + off);
    q->qclass = get16(buf + off + 2);
    q->has_question = true;
    off += 4;
    if (walk_records(buf, len, &off, (unsigned)get16(buf + 6) + get16(buf + 8), false, q) != 0 ||
        walk_records(buf, len, &off, get16(buf + 10), true, q) != 0)
        return reject(q, DNSMSG_FORMERR);
    if (q->has_edns && q->edns_version != 0)
        return reject(q, DNSMSG_BADVERS); /* RFC 6891 6.1.3 */
    return DNSMSG_QUERY;
}

size_t dnsmsg_udp_limit(const struct dnsmsg_query *q)
{
    if (!q->has_edns || q->edns_udp_size <= DNSMSG_UDP_MAX)
        return DNSMSG_UDP_MAX;
    if (q->edns_udp_size > DNSMSG_EDNS_UDP_MAX)
        return DNSMSG_EDNS_UDP_MAX;
    return q->edns_udp_size;
}

/* The address family the question asks for, or 0 when it asks for none we hold. */
static int asked_family(const struct dnsmsg_query *q)
{
    if (!q->has_question || q->qclass != DNSMSG_CLASS_IN)
        return 0;
    if (q->qtype == DNSMSG_TYPE_A)
        return AF_INET;
    if (q->qtype == DNSMSG_TYPE_AAAA)
        return AF_INET6;
    return 0;
}

static uint8_t *put_record(uint8_t *p, const struct sockaddr_storage *a, uint32_t ttl_s)
{
    p = put16(p, 0xC000 | DNSMSG_HEADER_LEN); /* the question name */
    if (a->ss_family == AF_INET) {
        p = put16(p, DNSMSG_TYPE_A);
        p = put16(p, DNSMSG_CLASS_IN);
        p = put32(p, ttl_s);
        p = put16(p, 4);
        memcpy(p, &((const struct sockaddr_in *)a)->sin_addr, 4);
        return p + 4;
    }
    p = put16(p, DNSMSG_TYPE_AAAA);
    p = put16(p, DNSMSG_CLASS_IN);
    p = put32(p, ttl_s);
    p = put16(p, 16);
    memcpy(p, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    return p + 16;
}

/* The offset in the message of the question name's suffix that has <labels> labels,
 * or 0 if it has fewer. */
static size_t suffix_offset(const struct dnsmsg_query *q, unsigned labels)
{
    size_t n = 0, off = 0, skip;

    for (size_t i = 0; i < q->qname_wire_len && q->qname_wire[i] != 0; i += 1 + q->qname_wire[i])
        n++;
    if (labels == 0 || labels > n)
        return 0;
    for (skip = n - labels; skip > 0; skip--)
        off += 1 + q->qname_wire[off];
    return DNSMSG_HEADER_LEN + off;
}

/* Writes the SOA of the zone whose apex name is at <apex> in the message. The
 * values are those of a zone that only this node serves: refresh, retry and expire
 * matter to no secondary, minimum is the negative-caching TTL. */
static uint8_t *put_soa(uint8_t *p, size_t apex, const struct dnsmsg_reply *r)
{
    static const char hostmaster[] = "hostmaster";

    p = put16(p, (uint16_t)(0xC000 | apex));
    p = put16(p, DNSMSG_TYPE_SOA);
    p = put16(p, DNSMSG_CLASS_IN);
    p = put32(p, r->ttl_s);
    p = put16(p, DNSMSG_SOA_LEN - 12);
    p = put16(p, (uint16_t)(0xC000 | apex)); /* MNAME: the zone itself */
    *p++ = sizeof(hostmaster) - 1;           /* RNAME: hostmaster.<zone> */
    memcpy(p, hostmaster, sizeof(hostmaster) - 1);
    p += sizeof(hostmaster) - 1;
    p = put16(p, (uint16_t)(0xC000 | apex));
    p = put32(p, r->soa_serial);
    p = put32(p, 3600);   /* refresh */
    p = put32(p, 600);    /* retry */
    p = put32(p, 604800); /* expire */
    return put32(p, r->ttl_s);
}

size_t dnsmsg_encode_reply(const struct dnsmsg_query *q, const struct dnsmsg_reply *r,
                           size_t max_len, uint8_t *out, size_t cap)
{
    size_t limit = max_len < cap ? max_len : cap, need, n_addrs = 0, n_answers = 0, soa_at = 0;
    int family = r->rcode == DNSMSG_NOERROR ? asked_family(q) : 0;
    bool is_tc = false, is_soa_answer;
    uint8_t *p = out;

    need = DNSMSG_HEADER_LEN + (q->has_question ? q->qname_wire_len + 4 : 0) +
           (q->has_edns ? OPT_LEN : 0);
    if (need > limit)
        return 0;
    n_addrs = r->n_addrs < DNSMSG_MAX_ADDRS ? r->n_addrs : DNSMSG_MAX_ADDRS;
    for (size_t i = 0; family && i < n_addrs; i++) {
        if (r->addrs[i].ss_family == family)
            n_answers++;
    }
    if (need + n_answers * (family == AF_INET ? 16 : 28) > limit) {
        is_tc = true;
        n_answers = 0;
    }
    need += n_answers * (family == AF_INET ? 16 : 28);
    if (q->has_question && r->soa_labels > 0 && !is_tc &&
        (r->rcode == DNSMSG_NXDOMAIN || (r->rcode == DNSMSG_NOERROR && n_answers == 0)) &&
        need + DNSMSG_SOA_LEN <= limit)
        soa_at = suffix_offset(q, r->soa_labels);
    /* a SOA query for the zone's own name: the SOA is the answer */
    is_soa_answer =
        soa_at == DNSMSG_HEADER_LEN && r->rcode == DNSMSG_NOERROR && q->qtype == DNSMSG_TYPE_SOA;

    p = put16(p, q->id);
    *p++ = (uint8_t)(0x80 | (q->opcode & 0x0F) << 3 | (r->is_authoritative ? 0x04 : 0) |
                     (is_tc ? 0x02 : 0) | (q->is_rd ? 0x01 : 0));
    *p++ = (uint8_t)((q->is_cd ? 0x10 : 0) | (r->rcode & 0x0F));
    p = put16(p, q->has_question ? 1 : 0);
    p = put16(p, (uint16_t)(n_answers + (is_soa_answer ? 1 : 0)));
    p = put16(p, soa_at && !is_soa_answer ? 1 : 0);
    p = put16(p, q->has_edns ? 1 : 0);
    if (q->has_question) {
        memcpy(p, q->qname_wire, q->qname_wire_len);
        p += q->qname_wire_len;
        p = put16(p, q->qtype);
        p = put16(p, q->qclass);
    }
    for (size_t i = 0; n_answers && i < n_addrs; i++) {
        if (r->addrs[i].ss_family == family)
            p = put_record(p, &r->addrs[i], r->ttl_s);
    }
    if (soa_at)
        p = put_soa(p, soa_at, r);
    if (q->has_edns) {
        *p++ = 0; /* root */
        p = put16(p, DNSMSG_TYPE_OPT);
        p = put16(p, DNSMSG_EDNS_UDP_MAX);
        p = put32(p, (uint32_t)(r->rcode >> 4 & 0xFF) << 24); /* version 0, DO clear */
        p = put16(p, 0);
    }
    return (size_t)(p - out);
}
