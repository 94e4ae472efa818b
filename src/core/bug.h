/* src/core/bug.h: assertions that stay on in release builds.
 * They state our own invariants; outside input is validated, never asserted on. */
#ifndef CORE_BUG_H
#define CORE_BUG_H

#include <stdio.h>
#include <stdlib.h>

#define BUG_ON(cond)                                                                               \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0)) {                                                       \
            fprintf(stderr, "BUG at %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
