/* fuzz/fuzz_node_config.c: config_parse() on arbitrary node configuration files.
 *
 * The first byte picks the flags (bit 0: UDP apps are built); the rest is the file.
 * A file is either refused with one line that says why, or accepted; an accepted
 * configuration keeps every documented bound (workers, busy_poll_us, timeouts, edge
 * addresses, NUL-terminated strings, apps with unique ids), and parsing the same
 * file again gives the same answer. Traps otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/app.h"
#include "proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* for -Wmissing-prototypes */

#define TRAP_IF(cond)                                                                              \
    do {                                                                                           \
        if (cond)                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

/* A NUL within the field's own bytes. */
#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

static void check_refusal(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);

    TRAP_IF(n == 0 || n == errlen); /* a reason, and terminated */
    TRAP_IF(memchr(err, '\n', n) != NULL);
}

static void check_config(const struct node_config *c)
{
    TRAP_IF(!TERMINATED(c->colo) || !TERMINATED(c->data_dir) || !TERMINATED(c->pool_v4) ||
            !TERMINATED(c->pool_v6) || !TERMINATED(c->geoip_country_db) ||
            !TERMINATED(c->geoip_asn_db) || !TERMINATED(c->origin_ca_file) ||
            !TERMINATED(c->store));
    TRAP_IF(c->colo[0] == '\0' || c->data_dir[0] == '\0');
    TRAP_IF(c->workers < 0 || c->workers > CONFIG_MAX_WORKERS ||
            c->busy_poll_us > CONFIG_MAX_BUSY_POLL_US);
    TRAP_IF(c->n_edge_addrs < 1 || c->n_edge_addrs > CONFIG_MAX_EDGE_ADDRS);
    for (size_t i = 0; i < c->n_edge_addrs; i++) {
        int family = c->edge_addrs[i].ss_family;

        TRAP_IF(family != AF_INET && family != AF_INET6);
    }
    TRAP_IF(c->connect_ms > CONFIG_MAX_TIMEOUT_MS || c->idle_ms > CONFIG_MAX_TIMEOUT_MS ||
            c->udp_idle_ms > CONFIG_MAX_TIMEOUT_MS || c->drain_ms > CONFIG_MAX_TIMEOUT_MS ||
            c->user_timeout_ms > CONFIG_MAX_TIMEOUT_MS);
    TRAP_IF(c->n_apps > 0 && c->apps == NULL);
    for (size_t i = 0; i < c->n_apps; i++) {
        const struct app *a = c->apps[i];

        TRAP_IF(a == NULL || !TERMINATED(a->id) || a->id[0] == '\0' || !a->is_file_managed);
        TRAP_IF(a->port_lo < 1 || a->port_lo > a->port_hi);
        TRAP_IF(a->n_origins > APP_MAX_ORIGINS || a->json == NULL);
        for (size_t j = 0; j < i; j++)
            TRAP_IF(strcmp(c->apps[j]->id, a->id) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags;
    const char *text;
    char err[256], err2[256];
    struct node_config *c, *c2;

    if (size == 0)
        return 0;
    flags = (data[0] & 1) ? APP_F_UDP_BUILT : 0;
    text = (const char *)data + 1;
    size--;

    c = config_parse(text, size, flags, err, sizeof(err));
    c2 = config_parse(text, size, flags, err2, sizeof(err2));
    TRAP_IF((c == NULL) != (c2 == NULL));
    if (c == NULL) {
        check_refusal(err, sizeof(err));
        TRAP_IF(strcmp(err, err2) != 0);
    } else {
        check_config(c);
        TRAP_IF(c->n_apps != c2->n_apps || c->workers != c2->workers);
    }
    config_free(c);
    config_free(c2);
    return 0;
}
