/* src/proxy/tunnel.h: one proxied TCP connection, client <-> origin. */
#ifndef PROXY_TUNNEL_H
#define PROXY_TUNNEL_H

#include <stdint.h>
#include <sys/socket.h>

#include "proxy/worker.h"

struct tunnel;

/* Sets up <pool> for this worker's tunnels. */
void tunnel_pool_init(struct slab_pool *pool);

/* Takes the accepted <fd> (closing it on failure too) from <client> on listener
 * <wl>, starts the origin connect, and emits the connect record. */
void tunnel_accept(struct worker *w, struct wlistener *wl, int fd,
                   const struct sockaddr_storage *client);

/* Ends every tunnel of <w> now (drain deadline), logging status <status>. */
void tunnel_close_all(struct worker *w, uint16_t status);

/* Maps an errno seen on the client or origin socket of an established tunnel, or
 * on an origin connect attempt, to the Spectrum status code. */
uint16_t tunnel_status_client(int err);
uint16_t tunnel_status_origin(int err);
uint16_t tunnel_status_connect(int err);

#endif
