/* src/dns/dnsmsg.h: the DNS wire format, as much as an authoritative A/AAAA
 * responder needs (RFC 1035 section 4, EDNS from RFC 6891). Pure: no I/O, no
 * allocation, no logging, so both halves can be fuzzed as they are. */
#ifndef DNS_DNSMSG_H
#define DNS_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNSMSG_HEADER_LEN 12
#define DNSMSG_NAME_WIRE_MAX 255  /* RFC 1035 2.3.4, length octets included */
#define DNSMSG_NAME_TEXT_MAX 1024 /* 255 wire octets, each at worst "\DDD", plus NUL */
#define DNSMSG_UDP_MAX 512        /* UDP payload without EDNS (RFC 1035 4.2.1) */
#define DNSMSG_EDNS_UDP_MAX 1232  /* the most we send, and advertise, over UDP with EDNS */
#define DNSMSG_TCP_MAX 65535      /* the 2-byte length prefix (RFC 1035 4.2.2) */
#define DNSMSG_MAX_ADDRS 32       /* addresses in one answer, both families together */
/* The SOA record of a zone, written with its names as pointers into the question:
 * owner (2), type, class, TTL, length (10), MNAME (2), RNAME "hostmaster" (11 + 2),
 * five 32-bit values (20). */
#define DNSMSG_SOA_LEN 47
/* The longest reply dnsmsg_encode_reply() can write: header, question, every address
 * as AAAA (2-byte name pointer, 10 bytes of fixed fields, 16 of data), a SOA and an
 * OPT. */
#define DNSMSG_REPLY_MAX                                                                           \
    (DNSMSG_HEADER_LEN + DNSMSG_NAME_WIRE_MAX + 4 + DNSMSG_MAX_ADDRS * 28 + DNSMSG_SOA_LEN + 11)

enum dnsmsg_type {
    DNSMSG_TYPE_A = 1,
    DNSMSG_TYPE_SOA = 6,
    DNSMSG_TYPE_AAAA = 28,
    DNSMSG_TYPE_OPT = 41,
    DNSMSG_TYPE_ANY = 255,
};

#define DNSMSG_CLASS_IN 1

enum dnsmsg_rcode {
    DNSMSG_NOERROR = 0,
    DNSMSG_FORMERR = 1,
    DNSMSG_SERVFAIL = 2,
    DNSMSG_NXDOMAIN = 3,
    DNSMSG_NOTIMP = 4,
    DNSMSG_REFUSED = 5,
    DNSMSG_BADVERS = 16, /* extended: needs an OPT record to carry its upper bits */
};

enum dnsmsg_status {
    DNSMSG_QUERY = 0, /* a standard query with one question: look it up and answer */
    DNSMSG_REJECT,    /* answer with q->rcode (FORMERR, NOTIMP or BADVERS) and no records */
    DNSMSG_DROP,      /* not worth an answer: shorter than a header, or itself a response */
};

struct dnsmsg_query {
    uint16_t id;
    uint8_t opcode;
    bool is_rd;                               /* recursion desired: echoed */
    bool is_cd;                               /* checking disabled: echoed (RFC 6840 5.9) */
    bool has_question;                        /* the fields below up to qclass are valid */
    uint8_t qname_wire[DNSMSG_NAME_WIRE_MAX]; /* uncompressed, letters as the client sent them */
    size_t qname_wire_len;
    char qname[DNSMSG_NAME_TEXT_MAX]; /* lower case, no trailing dot, "." for the root;
                                         '.' and '\\' in labels and unprintable bytes
                                         escaped as in RFC 4343 ("\." "\\" "\007") */
    uint16_t qtype, qclass;
    bool has_edns;          /* an OPT record came in the additional section */
    uint16_t edns_udp_size; /* its payload size, as sent */
    uint8_t edns_version;
    int rcode; /* enum dnsmsg_rcode: why, on DNSMSG_REJECT */
};

struct dnsmsg_reply {
    int rcode;                            /* enum dnsmsg_rcode */
    bool is_authoritative;                /* AA: set for names inside our zones */
    const struct sockaddr_storage *addrs; /* borrowed; those of the asked family are written */
    size_t n_addrs;                       /* at most DNSMSG_MAX_ADDRS are used */
    uint32_t ttl_s;
    /* The zone's SOA (RFC 2308): its apex is the question name less its first
     * <n_labels - soa_labels> labels; 0 = no SOA. A negative answer (NXDOMAIN, or
     * NOERROR without a record of the asked type) carries it in the authority
     * section so resolvers can cache the absence for ttl_s; a SOA query for the
     * apex itself gets it as the answer. Left out when it does not fit. */
    unsigned soa_labels;
    uint32_t soa_serial;
};

/* Parses the query in <buf> (<len> bytes, one whole message). Compression pointers
 * are followed in the question only if each one points before the previous jump
 * target, so loops and forward references are FORMERR. Other checks: QDCOUNT must
 * be 1 (else FORMERR), the opcode QUERY (else NOTIMP), at most one OPT record, the
 * root name, in the additional section (else FORMERR); EDNS version above 0 is
 * BADVERS. Bytes after the last record are ignored. Fills <q> as far as it got;
 * on DNSMSG_REJECT q->rcode says why. Reads nothing outside <buf>. */
enum dnsmsg_status dnsmsg_parse_query(const uint8_t *buf, size_t len, struct dnsmsg_query *q);

/* The largest reply the client of <q> takes over UDP: 512 bytes without EDNS, else
 * its advertised size clamped to 512..DNSMSG_EDNS_UDP_MAX. */
size_t dnsmsg_udp_limit(const struct dnsmsg_query *q);

/* Writes the reply to <q> into <out>: the header (ID, opcode, RD, CD echoed, QR and
 * AA as told), the question when <q> has one (uncompressed, as sent), one A or
 * AAAA record per address of the asked type (other types get none: NODATA), and a
 * minimal OPT when the query had one. When the reply would exceed <max_len> or
 * <cap>, the records are left out and TC is set; with <cap> at DNSMSG_REPLY_MAX
 * only <max_len> can cause that. Returns the length written, or 0 when not even
 * the header, question and OPT fit. */
size_t dnsmsg_encode_reply(const struct dnsmsg_query *q, const struct dnsmsg_reply *r,
                           size_t max_len, uint8_t *out, size_t cap);

#endif
