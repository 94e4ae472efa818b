/* src/dns/responder.h: the authoritative DNS responder for app names (DESIGN.md
 * section 3): A and AAAA with each app's current edge addresses, on UDP and TCP,
 * driven by the control thread's loop. */
#ifndef DNS_RESPONDER_H
#define DNS_RESPONDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct responder;

#define RESPONDER_TTL_S 60
#define RESPONDER_TCP_IDLE_MS 10000  /* a TCP client silent this long is closed */
#define RESPONDER_TCP_MAX_CONNS 256  /* past this, accepting pauses until one closes */
#define RESPONDER_TCP_QUERY_MAX 4096 /* a longer length prefix closes the connection */

/* Where a name stands, for names that are not app names. */
enum responder_zone {
    RESPONDER_OUTSIDE = 0, /* not ours: REFUSED */
    RESPONDER_INSIDE,      /* inside a zone we serve: NXDOMAIN unless it has names below */
    RESPONDER_APEX,        /* a zone's own name: it exists, NODATA */
};

/* Tells where <name> (lower case, no trailing dot, RFC 4343 escapes) stands, and
 * for INSIDE and APEX sets <*apex> to the zone's name (a suffix of <name> by labels,
 * valid until the next call), whose SOA goes with negative answers. Called on the
 * control thread for each query that is not answered with addresses. */
typedef enum responder_zone (*responder_zone_fn)(void *ctx, const char *name, const char **apex);

/* True when <name> is <zone> (<*is_apex> set) or a name under it; both lower case,
 * no trailing dot. <name> may hold RFC 4343 escapes: a dot preceded by an odd run
 * of backslashes is inside a label ("a\\.example.com" is not under example.com).
 * Pure: a helper for zone callbacks. */
bool responder_name_in_zone(const char *name, const char *zone, bool *is_apex);

/* One app name and its addresses. Several entries may carry the same name: their
 * addresses are merged. */
struct responder_name {
    const char *name;                     /* borrowed; no trailing dot; case is folded */
    const struct sockaddr_storage *addrs; /* borrowed; ports ignored */
    size_t n_addrs;
};

/* Returns a responder with no names and no sockets, or NULL (ENOMEM). <zone_cb>
 * may be NULL (then every unknown name is outside: REFUSED); <ctx> is passed to it. */
struct responder *responder_new(responder_zone_fn zone_cb, void *ctx);

/* Replaces the name table with <names> (copied). Wildcard addresses (0.0.0.0, ::)
 * are left out, duplicates merged, and at most DNSMSG_MAX_ADDRS kept per name; the
 * ancestors of each name up to its top label exist too, with no addresses (so they
 * answer NODATA, not NXDOMAIN: RFC 8020). Returns 0, or -ENOMEM with the old table
 * still in force. */
int responder_set_names(struct responder *r, const struct responder_name *names, size_t n);

/* Answers the query in <query> (<len> bytes) as received over TCP (<is_tcp>) or UDP
 * (then the reply is truncated to what the client takes). Writes the reply into
 * <out> (DNSMSG_REPLY_MAX bytes are always enough) and returns its length, or 0 when
 * the message gets no answer. No I/O: this is what the sockets call. */
size_t responder_answer(struct responder *r, const uint8_t *query, size_t len, bool is_tcp,
                        uint8_t *out, size_t cap);

/* Opens the UDP and TCP sockets on <addr> and registers them with <loop>. Call at
 * most once. Returns 0, or a negative errno with <err> saying which socket failed
 * (nothing is left open). */
int responder_listen(struct responder *r, struct loop *loop, const struct sockaddr_storage *addr,
                     char *err, size_t errlen);

/* Closes every socket and connection and frees <r>; NULL is a no-op. */
void responder_free(struct responder *r);

#endif
