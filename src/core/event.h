/* src/core/event.h: typed connection event records and the single-producer,
 * single-consumer ring that carries them from a worker to the control thread.
 *
 * The record is plain data so that it can live this low: workers (proxy/) fill it,
 * the control thread (analytics/evlog.c) turns it into an events.log line. A full
 * ring drops the record and counts it; it never blocks the data path. */
#ifndef CORE_EVENT_H
#define CORE_EVENT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum event_kind {
    EVENT_CONNECT = 0,     /* a connection or flow began (Status 0) */
    EVENT_DISCONNECT,      /* it ended after reaching the origin */
    EVENT_ORIGIN_ERROR,    /* the origin could not be reached (52x) */
    EVENT_CLIENT_FILTERED, /* refused by the IP firewall (403) */
};

enum event_proto { EVENT_TCP = 0, EVENT_UDP = 1 };

struct event_addr {
    uint8_t ip[16]; /* IPv4 in the low 4 bytes when family is 4 */
    uint16_t port;
    uint8_t family; /* 4, 6, or 0 when unknown */
};

struct event_rec {
    uint64_t ts_ns;         /* realtime of the event */
    uint64_t connect_ns;    /* realtime when the client was accepted (flow created) */
    uint64_t disconnect_ns; /* realtime of the end; 0 on connect records */
    uint64_t client_bytes;  /* read from the client */
    uint64_t origin_bytes;  /* read from the origin */
    struct event_addr client, origin;
    uint16_t status; /* Spectrum status code */
    uint8_t kind;    /* enum event_kind */
    uint8_t proto;   /* enum event_proto */
    uint8_t pp;      /* enum app_pp value */
    char app_id[65];
};

/* Power of two. The control thread drains every 50 ms and whenever a ring is
 * half full (the worker pokes it), so 4,096 records (about 600 KiB, all of it
 * resident once the ring has cycled) absorb bursts of tens of thousands of
 * connections per second without drops. */
#define EVENT_RING_SIZE 4096u

struct event_ring {
    alignas(64) _Atomic uint32_t head; /* next slot the producer writes */
    alignas(64) _Atomic uint32_t tail; /* next slot the consumer reads */
    alignas(64) uint64_t dropped;      /* producer-owned; read racily for stats */
    struct event_rec slots[EVENT_RING_SIZE];
};

enum event_push {
    EVENT_PUSHED = 0, /* queued */
    EVENT_HALF_FULL,  /* queued, and the ring just reached half full: wake the consumer */
    EVENT_DROPPED,    /* the ring was full: dropped and counted */
};

/* Producer side: copies <rec> in, or counts a drop when the ring is full. */
static inline enum event_push event_ring_push(struct event_ring *r, const struct event_rec *rec)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);

    if (head - tail >= EVENT_RING_SIZE) {
        r->dropped++;
        return EVENT_DROPPED;
    }
    r->slots[head & (EVENT_RING_SIZE - 1)] = *rec;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return head + 1 - tail == EVENT_RING_SIZE / 2 ? EVENT_HALF_FULL : EVENT_PUSHED;
}

/* Consumer side: returns the oldest record or NULL; call event_ring_pop() after use. */
static inline const struct event_rec *event_ring_peek(struct event_ring *r)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);

    if (tail == head)
        return NULL;
    return &r->slots[tail & (EVENT_RING_SIZE - 1)];
}

static inline void event_ring_pop(struct event_ring *r)
{
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
}

#endif
