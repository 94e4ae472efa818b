/* src/analytics/evlog.h: the event log, <data_dir>/events.log: one JSON object a
 * line with the field names of Cloudflare's Logpush spectrum_events dataset.
 * Written only by the control thread, which drains the workers' rings into it. */
#ifndef ANALYTICS_EVLOG_H
#define ANALYTICS_EVLOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

struct evlog;

/* Opens (appending, creating with mode 0640) <path>. Returns NULL with <err> set. */
struct evlog *evlog_open(const char *path, char *err, size_t errlen);
void evlog_close(struct evlog *ev);

/* The ColoCode written in every line from now on. */
void evlog_set_colo(struct evlog *ev, const char *colo);

/* Called for every record drained, after it is formatted (for analytics). */
typedef void (*evlog_record_fn)(void *arg, const struct event_rec *rec);
void evlog_set_observer(struct evlog *ev, evlog_record_fn fn, void *arg);

/* Moves every record out of <rings> into the file, in one write per ring batch.
 * Returns how many records were written. A failed write is counted (records
 * lost) and logged at most once a minute; it never blocks the workers. */
size_t evlog_drain(struct evlog *ev, struct event_ring *const *rings, size_t n_rings);

/* Formats <rec> as one line (with '\n') into <buf>. Returns the length, or 0 if
 * <len> is too small. Pure, for tests. */
size_t evlog_format(const struct event_rec *rec, const char *colo, char *buf, size_t len);

uint64_t evlog_records_written(const struct evlog *ev);
uint64_t evlog_records_lost(const struct evlog *ev);

#endif
