/* tests/unit/helpers.h: what several unit tests need. Include it after <cmocka.h>. */
#ifndef TESTS_UNIT_HELPERS_H
#define TESTS_UNIT_HELPERS_H

#include <stdint.h>
#include <sys/socket.h>

#include "net/addr.h"

/* An address from an IPv4 or IPv6 literal and a port; anything else fails the test. */
static inline struct sockaddr_storage test_ip_port(const char *text, uint16_t port)
{
    struct sockaddr_storage ss;

    if (addr_parse_ip(text, &ss) != 0)
        fail_msg("bad test address %s", text);
    addr_set_port(&ss, port);
    return ss;
}

static inline struct sockaddr_storage test_ip(const char *text)
{
    return test_ip_port(text, 0);
}

#endif
