/* src/proxy/config.h: the node configuration file (../shared/DESIGN.md section 2).
 * Every key is optional; unknown keys are an error; the whole file is refused at
 * the first error, with a message naming the app (if any), the field and the reason. */
#ifndef PROXY_CONFIG_H
#define PROXY_CONFIG_H

#include "proxy/app.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_MAX_EDGE_ADDRS 16
#define CONFIG_MAX_APPS 4096
#define CONFIG_MAX_WORKERS 64
#define CONFIG_MAX_BUSY_POLL_US 10000
#define CONFIG_MAX_TIMEOUT_MS 86400000 /* one day, for every timeouts.* key */

struct node_config {
    char colo[16];                      /* "LAB" */
    char data_dir[4096];                /* "./var" */
    int workers;                        /* 0 = one per online CPU */
    uint32_t busy_poll_us;              /* 500: workers' adaptive busy-poll limit; 0 = off */
    struct sockaddr_storage api_listen; /* 127.0.0.1:8080 */
    struct sockaddr_storage dns_listen; /* 127.0.0.1:5353 */
    struct sockaddr_storage edge_addrs[CONFIG_MAX_EDGE_ADDRS]; /* 127.0.0.1, ::1 */
    size_t n_edge_addrs;
    char pool_v4[64], pool_v6[64]; /* "" when null */
    uint32_t connect_ms;           /* 10000 */
    uint32_t idle_ms;              /* 0 = no idle timeout */
    uint32_t udp_idle_ms;          /* 30000 */
    uint32_t drain_ms;             /* 30000 */
    uint32_t user_timeout_ms;      /* 30000: TCP_USER_TIMEOUT and keepalive budget */
    uint32_t udp_max_flows;        /* per worker; 65536 */
    uint32_t udp_rcvbuf_bytes;     /* SO_RCVBUF of each edge UDP socket; 1 MiB */
    char geoip_country_db[4096], geoip_asn_db[4096]; /* "" when null */
    struct sockaddr_storage resolver;                /* ss_family 0 when null */
    char origin_ca_file[4096];                       /* "" when null */
    char store[256];                                 /* "sqlite" */
    struct app **apps;                               /* owned */
    size_t n_apps;
};

/* Parses a configuration from <text> (<len> bytes of JSON). <flags> are passed on to
 * app_from_json() with APP_F_FILE added. Returns a new config, or NULL with a
 * one-line reason in <err> ("app 'ssh': origin_direct[0]: ..."). */
struct node_config *config_parse(const char *text, size_t len, unsigned flags, char *err,
                                 size_t errlen);

/* Reads and parses <path>; same contract as config_parse(), and the message names
 * the file when it cannot be read. */
struct node_config *config_load(const char *path, unsigned flags, char *err, size_t errlen);

/* The embedded defaults, as if from an empty object "{}". Never NULL. */
struct node_config *config_default(void);

void config_free(struct node_config *cfg);

#endif
