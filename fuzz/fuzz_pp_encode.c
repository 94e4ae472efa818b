/* fuzz/fuzz_pp_encode.c: pp_encode() against a strict decoder written here.
 *
 * The input picks the version, the transport, both address families (plain IPv4,
 * IPv6, IPv4-mapped IPv6, or no IP family at all), the addresses, the ports and the
 * buffer length. We work out on our own what the header must say (un-map, then map
 * the IPv4 side if the families still differ), let pp_encode() write it, and read it
 * back with a decoder that shares no code with src/proxy/pp.c. Any difference, a
 * v1 line over 107 bytes, or a write on failure is a crash.
 *
 * Input layout (missing bytes read as zero):
 *   0      bits 0-1 version: 0 -> 1, 1 and 2 -> 2, 3 -> an invalid one (bits 6-7)
 *          bit 2 is_dgram
 *   1      bits 0-1 src kind, bit 2 its non-IP family; bits 4-5 dst kind, bit 6 its:
 *          kind 0 AF_INET, 1 AF_INET6, 2 AF_INET6 ::ffff:a.b.c.d, 3 AF_UNSPEC/AF_UNIX
 *   2      buffer length: bit 7 set -> PP_MAX_LEN, else the low 7 bits (0..127)
 *   3..18  src address bytes (kind 0 and 2 use the first 4)
 *   19..34 dst address bytes
 *   35..36 src port, 37..38 dst port (big-endian) */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/pp.h"

#define INPUT_LEN 39
#define CANARY 0xA5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* for -Wmissing-prototypes */

/* One side of the connection as the header must carry it. */
struct side {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* 4 bytes used for AF_INET */
    uint16_t port;
};

/* Everything a decoded header says. */
struct decoded {
    bool is_dgram;
    struct side src, dst;
};

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void trap_unless(bool ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

/* Builds the sockaddr handed to pp_encode(); returns false for a non-IP family. */
static bool build_addr(int kind, bool alt_family, const uint8_t *bytes, uint16_t port,
                       struct sockaddr_storage *ss)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    switch (kind) {
    case 0:
        v4->sin_family = AF_INET;
        memcpy(&v4->sin_addr, bytes, 4);
        v4->sin_port = htons(port);
        return true;
    case 1:
        v6->sin6_family = AF_INET6;
        memcpy(&v6->sin6_addr, bytes, 16);
        v6->sin6_port = htons(port);
        return true;
    case 2:
        v6->sin6_family = AF_INET6;
        v6->sin6_addr.s6_addr[10] = 0xff;
        v6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&v6->sin6_addr.s6_addr[12], bytes, 4);
        v6->sin6_port = htons(port);
        return true;
    default:
        ss->ss_family = alt_family ? AF_UNIX : AF_UNSPEC;
        return false;
    }
}

/* What the sockaddr means once un-mapped, written without pp.c or addr.c. */
static struct side effective(const struct sockaddr_storage *ss)
{
    static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct side s;

    memset(&s, 0, sizeof(s));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        s.family = AF_INET;
        memcpy(s.addr, &v4->sin_addr, 4);
        s.port = ntohs(v4->sin_port);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        s.port = ntohs(v6->sin6_port);
        if (memcmp(v6->sin6_addr.s6_addr, mapped_prefix, 12) == 0) {
            s.family = AF_INET;
            memcpy(s.addr, &v6->sin6_addr.s6_addr[12], 4);
        } else {
            s.family = AF_INET6;
            memcpy(s.addr, v6->sin6_addr.s6_addr, 16);
        }
    }
    return s;
}

static void map_into_v6(struct side *s)
{
    uint8_t v4[4];

    memcpy(v4, s->addr, 4);
    memset(s->addr, 0, sizeof(s->addr));
    s->addr[10] = 0xff;
    s->addr[11] = 0xff;
    memcpy(s->addr + 12, v4, 4);
    s->family = AF_INET6;
}

/* ---- the strict v1 decoder ---- */

/* Decimal 0..65535, no sign, no leading zero. */
static bool v1_port(const char *p, size_t n, uint16_t *out)
{
    unsigned long v = 0;
    size_t i;

    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return false;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* An address in the one canonical text inet_ntop() gives it. */
static bool v1_addr(int family, const char *p, size_t n, uint8_t out[16])
{
    char text[INET6_ADDRSTRLEN], back[INET6_ADDRSTRLEN];
    size_t i;

    if (n == 0 || n >= sizeof(text))
        return false;
    for (i = 0; i < n; i++) {
        char c = p[i];
        bool ok = (c >= '0' && c <= '9') || c == '.' ||
                  (family == AF_INET6 && ((c >= 'a' && c <= 'f') || c == ':'));
        if (!ok)
            return false;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    if (inet_pton(family, text, out) != 1)
        return false;
    if (!inet_ntop(family, out, back, sizeof(back)) || strcmp(back, text) != 0)
        return false;
    return true;
}

static bool decode_v1(const uint8_t *b, size_t n, struct decoded *d)
{
    const char *p = (const char *)b, *end, *field[4];
    size_t flen[4], i;
    int family;

    if (n < 2 || n > PP_V1_MAX_LEN || b[n - 2] != '\r' || b[n - 1] != '\n')
        return false;
    for (i = 0; i + 2 < n; i++) { /* one line: no CR, LF or NUL before the CRLF */
        if (b[i] == '\r' || b[i] == '\n' || b[i] == '\0')
            return false;
    }
    end = p + n - 2;
    if (n < 11 || memcmp(p, "PROXY TCP", 9) != 0 || p[10] != ' ')
        return false;
    if (p[9] == '4') {
        family = AF_INET;
    } else if (p[9] == '6') {
        family = AF_INET6;
    } else {
        return false;
    }
    p += 11;
    for (i = 0; i < 4; i++) { /* exactly four fields, one space between each */
        const char *q = p;
        while (q < end && *q != ' ') {
            q++;
        }
        if (q == p)
            return false;
        field[i] = p;
        flen[i] = (size_t)(q - p);
        if (i < 3) {
            if (q == end)
                return false;
            p = q + 1;
        } else if (q != end) {
            return false;
        }
    }
    memset(d, 0, sizeof(*d));
    d->src.family = d->dst.family = family;
    return v1_addr(family, field[0], flen[0], d->src.addr) &&
           v1_addr(family, field[1], flen[1], d->dst.addr) &&
           v1_port(field[2], flen[2], &d->src.port) && v1_port(field[3], flen[3], &d->dst.port);
}

/* ---- the strict v2 decoder ---- */

static bool decode_v2(const uint8_t *b, size_t n, struct decoded *d)
{
    size_t alen, body;

    if (n < 16 || memcmp(b, v2_sig, sizeof(v2_sig)) != 0 || b[12] != 0x21)
        return false;
    memset(d, 0, sizeof(*d));
    switch (b[13]) {
    case 0x11:
    case 0x12:
        d->src.family = AF_INET;
        alen = 4;
        break;
    case 0x21:
    case 0x22:
        d->src.family = AF_INET6;
        alen = 16;
        break;
    default:
        return false;
    }
    d->dst.family = d->src.family;
    d->is_dgram = (b[13] & 0x0f) == 0x02;
    body = ((size_t)b[14] << 8) | b[15];
    if (body != 2 * alen + 4 || n != 16 + body) /* we send no TLVs */
        return false;
    memcpy(d->src.addr, b + 16, alen);
    memcpy(d->dst.addr, b + 16 + alen, alen);
    d->src.port = (uint16_t)((b[16 + 2 * alen] << 8) | b[17 + 2 * alen]);
    d->dst.port = (uint16_t)((b[18 + 2 * alen] << 8) | b[19 + 2 * alen]);
    return true;
}

static bool same_side(const struct side *a, const struct side *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

static void check_untouched(const uint8_t *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        trap_unless(buf[i] == CANARY);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int bad_versions[4] = {0, 3, -1, INT_MAX};
    uint8_t in[INPUT_LEN] = {0};
    uint8_t full[PP_MAX_LEN + 1];
    struct sockaddr_storage src, dst, src0, dst0;
    struct side want_src, want_dst;
    struct decoded got;
    bool is_dgram, src_ok, dst_ok, valid;
    int version, ret, full_ret;
    size_t len;
    uint8_t *buf;

    memcpy(in, data, size < INPUT_LEN ? size : INPUT_LEN);
    switch (in[0] & 3) {
    case 0:
        version = 1;
        break;
    case 3:
        version = bad_versions[in[0] >> 6];
        break;
    default:
        version = 2;
    }
    is_dgram = in[0] & 4;
    src_ok = build_addr(in[1] & 3, in[1] & 4, in + 3, (uint16_t)((in[35] << 8) | in[36]), &src);
    dst_ok = build_addr((in[1] >> 4) & 3, in[1] & 0x40, in + 19, (uint16_t)((in[37] << 8) | in[38]),
                        &dst);
    len = (in[2] & 0x80) ? PP_MAX_LEN : (size_t)(in[2] & 0x7f);
    valid = (version == 1 || version == 2) && !(version == 1 && is_dgram) && src_ok && dst_ok;
    src0 = src;
    dst0 = dst;

    /* A buffer of exactly <len> bytes, so ASan sees any write past it. */
    buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memset(buf, CANARY, len);
    ret = pp_encode(version, is_dgram, &src, &dst, buf, len);
    trap_unless(memcmp(&src, &src0, sizeof(src)) == 0 && memcmp(&dst, &dst0, sizeof(dst)) == 0);
    if (!valid) {
        trap_unless(ret == -EINVAL);
        check_untouched(buf, len);
        free(buf);
        return 0;
    }

    /* The same header with room to spare, to learn its length and decode it. */
    memset(full, CANARY, sizeof(full));
    full_ret = pp_encode(version, is_dgram, &src, &dst, full, PP_MAX_LEN);
    trap_unless(full_ret > 0 && (size_t)full_ret <= PP_MAX_LEN && full[PP_MAX_LEN] == CANARY);
    if ((size_t)full_ret <= len) {
        trap_unless(ret == full_ret && memcmp(buf, full, (size_t)ret) == 0);
    } else {
        trap_unless(ret == -ENOSPC);
        check_untouched(buf, len);
    }
    free(buf);

    want_src = effective(&src);
    want_dst = effective(&dst);
    if (want_src.family != want_dst.family) {
        if (want_src.family == AF_INET) {
            map_into_v6(&want_src);
        } else {
            map_into_v6(&want_dst);
        }
    }
    if (version == 1) {
        trap_unless(full_ret <= PP_V1_MAX_LEN);
        trap_unless(decode_v1(full, (size_t)full_ret, &got));
        trap_unless(full_ret <= (want_src.family == AF_INET ? 56 : 104));
    } else {
        trap_unless(decode_v2(full, (size_t)full_ret, &got));
        trap_unless(got.is_dgram == is_dgram);
    }
    trap_unless(same_side(&got.src, &want_src) && same_side(&got.dst, &want_dst));
    return 0;
}
