/* src/api/ids.h: object ids and timestamps as the v4 API writes them. */
#ifndef API_IDS_H
#define API_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define IDS_HEX_LEN 32
#define IDS_TIME_MAX 40

/* Fills <buf> with <len> bytes from getrandom(2), retrying on EINTR and short
 * reads. Returns 0 or -errno. */
int ids_random_bytes(void *buf, size_t len);
/* Writes 32 random lowercase hex characters (getrandom) and a NUL into <out>.
 * Returns 0 or -errno. */
int ids_random_hex(char out[IDS_HEX_LEN + 1]);
/* Whether <s> is exactly 32 lowercase hex characters. */
bool ids_is_hex(const char *s);
/* The current UTC time as RFC 3339 with microseconds: 2024-05-01T12:00:00.123456Z */
void ids_now(char out[IDS_TIME_MAX]);

#endif
