/* src/core/list.h: intrusive doubly linked lists (libuv src/queue.h style).
 * A list head is a struct list_node whose next/prev point to itself when empty. */
#ifndef CORE_LIST_H
#define CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
    struct list_node *next, *prev;
};

static inline void list_init(struct list_node *head)
{
    head->next = head;
    head->prev = head;
}

static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}

/* Inserts <n> at the tail of <head>. */
static inline void list_add_tail(struct list_node *head, struct list_node *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Unlinks <n> and leaves it pointing to itself, so a second list_del() is harmless. */
static inline void list_del(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n;
    n->prev = n;
}

/* Moves every node of <src> to the empty list <dst>, leaving <src> empty. */
static inline void list_move_all(struct list_node *dst, struct list_node *src)
{
    if (list_empty(src)) {
        list_init(dst);
        return;
    }
    *dst = *src;
    dst->next->prev = dst;
    dst->prev->next = dst;
    list_init(src);
}

#define list_for_each_safe(pos, tmp, head)                                                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
