/*
 * ob_heap: lowest key first, push order within a key, removal from the
 * middle, a node pushed again moves, and a long random run against a
 * sorted reference.
 */
#include <stdlib.h>
#include <string.h>

#include "ob_heap.h"
#include "testutil.h"

typedef struct item_s {
    int id;
    ob_heap_node_t node;
} item_t;

static int pop_id(ob_heap_t *h)
{
    ob_heap_node_t *n = ob_heap_top(h);
    if (!n)
        return -1;
    ob_heap_remove(h, n);
    return OB_HEAP_ENTRY(n, item_t, node)->id;
}

static void test_order(void **state)
{
    (void)state;
    ob_heap_t h = {0};
    item_t it[8];
    static const uint64_t keys[] = {5, 3, 9, 3, 1, 7, 1, 5};
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 8; i++) {
        it[i].id = i;
        assert_false(ob_heap_in(&it[i].node));
        assert_int_equal(ob_heap_push(&h, &it[i].node, keys[i]), OB_OK);
        assert_true(ob_heap_in(&it[i].node));
    }
    ob_heap_remove(&h, &it[2].node); /* the 9, from the middle */
    assert_false(ob_heap_in(&it[2].node));
    ob_heap_remove(&h, &it[2].node);                           /* again: nothing */
    assert_int_equal(ob_heap_push(&h, &it[0].node, 0), OB_OK); /* moves to the front */
    static const int want[] = {0, 4, 6, 1, 3, 7, 5};
    for (int i = 0; i < 7; i++)
        assert_int_equal(pop_id(&h), want[i]);
    assert_int_equal(pop_id(&h), -1);
    assert_int_equal(h.n, 0);
    /* clear takes every node out */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ob_heap_push(&h, &it[i].node, 1), OB_OK);
    ob_heap_clear(&h);
    for (int i = 0; i < 3; i++)
        assert_false(ob_heap_in(&it[i].node));
    assert_null(ob_heap_top(&h));
}

static int cmp_key(const void *a, const void *b)
{
    const item_t *x = *(item_t *const *)a, *y = *(item_t *const *)b;
    if (x->node.key != y->node.key)
        return x->node.key < y->node.key ? -1 : 1;
    return x->node.seq < y->node.seq ? -1 : x->node.seq > y->node.seq;
}

static void test_random(void **state)
{
    (void)state;
    enum { N = 500 };
    static item_t it[N];
    memset(it, 0, sizeof(it));
    ob_heap_t h = {0};
    srand(7);
    for (int round = 0; round < 20000; round++) {
        item_t *x = &it[rand() % N];
        if (rand() % 3 == 0)
            ob_heap_remove(&h, &x->node);
        else
            assert_int_equal(ob_heap_push(&h, &x->node, (uint64_t)(rand() % 50)), OB_OK);
    }
    item_t *in[N];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        if (ob_heap_in(&it[i].node))
            in[n++] = &it[i];
    }
    assert_int_equal(n, h.n);
    qsort(in, n, sizeof(in[0]), cmp_key);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pop_id(&h), in[i]->id);
    ob_heap_clear(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
