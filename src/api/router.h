/* src/api/router.h: matches a method and a path against a table of routes whose
 * patterns are segments with "*" as a capture: "client/v4/zones/ * /spectrum/apps"
 * (without the spaces). Pure. */
#ifndef API_ROUTER_H
#define API_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4
#define ROUTER_MAX_SEGMENTS 16
#define ROUTER_SEGMENT_MAX 256

struct router_route {
    const char *method;  /* "GET" */
    const char *pattern; /* "client/v4/zones/x/spectrum/apps" with x written as a star */
};

enum router_result {
    ROUTER_FOUND = 0,
    ROUTER_NO_ROUTE,   /* no pattern matches the path: 404 */
    ROUTER_BAD_METHOD, /* a pattern matches the path, with another method: 405 */
};

struct router_match {
    size_t route;                                       /* index into the table */
    char params[ROUTER_MAX_PARAMS][ROUTER_SEGMENT_MAX]; /* captured segments, in order */
    size_t n_params;
};

/* Empty segments ("//", a trailing "/") are ignored; a segment longer than
 * ROUTER_SEGMENT_MAX - 1 or more than ROUTER_MAX_SEGMENTS segments never match. */
enum router_result router_match(const struct router_route *routes, size_t n_routes,
                                const char *method, const char *path, struct router_match *out);

#endif
