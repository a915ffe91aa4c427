/* SPDX-License-Identifier: MIT */
/*
 * Intrusive doubly linked lists (the kernel's shape): an object embeds a struct lw_list
 * and can be on a list without any allocation. An unlinked node points at itself, so
 * lw_list_remove is safe to call twice.
 */
#ifndef LW_COMMON_LIST_H
#define LW_COMMON_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct lw_list {
    struct lw_list *prev, *next;
};

static inline void lw_list_init(struct lw_list *l)
{
    l->prev = l->next = l;
}

static inline bool lw_list_is_empty(const struct lw_list *l)
{
    return l->next == l;
}

static inline bool lw_list_is_linked(const struct lw_list *n)
{
    return n->next != n;
}

/* Insert n before head, i.e. at the tail of the list headed by head. */
static inline void lw_list_push_back(struct lw_list *head, struct lw_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void lw_list_remove(struct lw_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define LW_LIST_ENTRY(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define LW_LIST_FIRST(head, type, member) (lw_list_is_empty(head) ? NULL : LW_LIST_ENTRY((head)->next, type, member))
/* Iterate where the body may unlink the current node. */
#define LW_LIST_FOREACH_SAFE(it, tmp, head) for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
