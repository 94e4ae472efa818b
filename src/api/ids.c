/* src/api/ids.c: ids are 16 bytes from getrandom(2) in hex, like Cloudflare's
 * (32 lowercase hex characters); timestamps carry microseconds, like the
 * created_on/modified_on Cloudflare returns ("2018-03-28T21:25:55.643771Z"). */
#include "api/ids.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int ids_random_bytes(void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom((uint8_t *)buf + got, len - got, 0);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    return 0;
}

int ids_random_hex(char out[IDS_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[IDS_HEX_LEN / 2];
    int err = ids_random_bytes(b, sizeof(b));

    if (err < 0)
        return err;
    for (size_t i = 0; i < sizeof(b); i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[IDS_HEX_LEN] = '\0';
    return 0;
}

bool ids_is_hex(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        if (i == IDS_HEX_LEN || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return i == IDS_HEX_LEN;
}

void ids_now(char out[IDS_TIME_MAX])
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, IDS_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);

    snprintf(out + n, IDS_TIME_MAX - n, ".%06uZ", (unsigned)(ts.tv_nsec / 1000) % 1000000u);
}
