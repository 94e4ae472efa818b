/* src/api/router.c: a linear walk over a small route table. The path is split
 * once into segments; each pattern is compared segment by segment. A path that
 * matches some pattern under another method is a 405, as HTTP asks. */
#include "api/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct segs {
    const char *at[ROUTER_MAX_SEGMENTS];
    size_t len[ROUTER_MAX_SEGMENTS];
    size_t n;
};

/* Returns false when there are too many segments or one is too long. */
static bool split(const char *path, struct segs *s)
{
    s->n = 0;
    while (*path) {
        size_t n;

        while (*path == '/')
            path++;
        if (!*path)
            break;
        n = strcspn(path, "/");
        if (s->n == ROUTER_MAX_SEGMENTS || n >= ROUTER_SEGMENT_MAX)
            return false;
        s->at[s->n] = path;
        s->len[s->n] = n;
        s->n++;
        path += n;
    }
    return true;
}

static bool match_one(const char *pattern, const struct segs *path, struct router_match *out)
{
    struct segs pat;
    size_t np = 0;

    if (!split(pattern, &pat) || pat.n != path->n)
        return false;
    for (size_t i = 0; i < pat.n; i++) {
        if (pat.len[i] == 1 && pat.at[i][0] == '*') {
            if (np == ROUTER_MAX_PARAMS)
                return false;
            if (out)
                snprintf(out->params[np], ROUTER_SEGMENT_MAX, "%.*s", (int)path->len[i],
                         path->at[i]);
            np++;
        } else if (pat.len[i] != path->len[i] || memcmp(pat.at[i], path->at[i], pat.len[i]) != 0) {
            return false;
        }
    }
    if (out)
        out->n_params = np;
    return true;
}

enum router_result router_match(const struct router_route *routes, size_t n_routes,
                                const char *method, const char *path, struct router_match *out)
{
    struct segs segs;
    bool path_known = false;

    memset(out, 0, sizeof(*out));
    if (!split(path, &segs))
        return ROUTER_NO_ROUTE;
    for (size_t i = 0; i < n_routes; i++) {
        if (!match_one(routes[i].pattern, &segs, NULL))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method) == 0) {
            match_one(routes[i].pattern, &segs, out);
            out->route = i;
            return ROUTER_FOUND;
        }
    }
    return path_known ? ROUTER_BAD_METHOD : ROUTER_NO_ROUTE;
}
