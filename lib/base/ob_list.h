/*
 * ob_list: an intrusive doubly linked list (circular, with the head as a
 * sentinel, as nginx's ngx_queue_t and the Linux kernel's list_head).
 *
 * An element embeds an ob_list_t and is found back with OB_LIST_ENTRY. The
 * head is an ob_list_t initialised with ob_list_init (or OB_LIST_HEAD_INIT);
 * an element's node is "unlinked" after ob_list_init or ob_list_remove, so
 * removing twice is safe. Nothing here allocates.
 *
 * Threading: one thread per list.
 */
#ifndef OB_LIST_H
#define OB_LIST_H

#include <stddef.h>

typedef struct ob_list_s {
    struct ob_list_s *prev, *next;
} ob_list_t;

#define OB_LIST_HEAD_INIT(name)                                                                    \
    {                                                                                              \
        &(name), &(name)                                                                           \
    }
#define OB_LIST_ENTRY(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void ob_list_init(ob_list_t *l)
{
    l->prev = l->next = l;
}

static inline int ob_list_empty(const ob_list_t *head)
{
    return head->next == head;
}

/* 1 when n is in a list (a zeroed node is in none). */
static inline int ob_list_linked(const ob_list_t *n)
{
    return n->next && n->next != n;
}

static inline void ob_list_insert_after(ob_list_t *at, ob_list_t *n)
{
    n->prev = at;
    n->next = at->next;
    at->next->prev = n;
    at->next = n;
}

/* First and last of head's list. */
static inline void ob_list_push_front(ob_list_t *head, ob_list_t *n)
{
    ob_list_insert_after(head, n);
}

static inline void ob_list_push_back(ob_list_t *head, ob_list_t *n)
{
    ob_list_insert_after(head->prev, n);
}

static inline void ob_list_remove(ob_list_t *n)
{
    if (!ob_list_linked(n))
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    ob_list_init(n);
}

/* NULL when empty. */
static inline ob_list_t *ob_list_first(const ob_list_t *head)
{
    return ob_list_empty(head) ? NULL : head->next;
}

static inline ob_list_t *ob_list_last(const ob_list_t *head)
{
    return ob_list_empty(head) ? NULL : head->prev;
}

/* Every node of head's list; the current one may be removed (it is read
 * past before the body runs), others not. */
#define OB_LIST_FOREACH(pos, tmp, head)                                                            \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
