/*
 * ob_offsets: the committable offset is the lowest unfinished one, whatever
 * the completion order; gaps in offsets; revoked partitions; a randomized
 * check against a simple model.
 */
#include <stdlib.h>

#include "ob_offsets.h"
#include "testutil.h"

static void test_out_of_order_completion(void **state)
{
    ob_offsets_t *t = ob_offsets_new();
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(ob_offsets_add(t, "a", 0, o), OB_OK);
    int64_t c = -1;
    assert_int_equal(ob_offsets_done(t, "a", 0, 12, &c), 0); /* 10, 11 still running */
    assert_int_equal(ob_offsets_done(t, "a", 0, 11, &c), 0);
    assert_int_equal(ob_offsets_done(t, "a", 0, 10, &c), 1);
    assert_int_equal(c, 13); /* 10..12 done: resume at 13 */
    assert_int_equal(ob_offsets_pending(t, "a", 0), 2);
    assert_int_equal(ob_offsets_done(t, "a", 0, 14, &c), 0);
    assert_int_equal(ob_offsets_done(t, "a", 0, 13, &c), 1);
    assert_int_equal(c, 15);
    assert_int_equal(ob_offsets_total(t), 0);
    assert_int_equal(ob_offsets_done(t, "a", 0, 13, &c), -1); /* twice */
    ob_offsets_free(t);
}

static void test_gaps_and_partitions(void **state)
{
    ob_offsets_t *t = ob_offsets_new();
    assert_int_equal(ob_offsets_add(t, "a", 0, 5), OB_OK);
    assert_int_equal(ob_offsets_add(t, "a", 0, 9), OB_OK); /* gap: compaction */
    assert_int_equal(ob_offsets_add(t, "a", 1, 1), OB_OK);
    assert_int_equal(ob_offsets_add(t, "b", 0, 1), OB_OK);
    assert_int_equal(ob_offsets_add(t, "a", 0, 9), OB_ERR_INVALID_ARG);
    int64_t c;
    assert_int_equal(ob_offsets_done(t, "a", 0, 9, &c), 0);
    assert_int_equal(ob_offsets_done(t, "a", 0, 5, &c), 1);
    assert_int_equal(c, 10);
    assert_int_equal(ob_offsets_total(t), 2);
    ob_offsets_forget(t, "a", 1);
    assert_int_equal(ob_offsets_total(t), 1);
    assert_int_equal(ob_offsets_done(t, "a", 1, 1, &c), -1);
    assert_int_equal(ob_offsets_done(t, "b", 0, 1, &c), 1);
    assert_int_equal(c, 2);
    ob_offsets_free(t);
}

/* Random completion order over 100,000 offsets: the committed offset always
 * equals the model's lowest unfinished offset, and never moves backwards. */
static void test_random_against_model(void **state)
{
    enum { N = 100000, WINDOW = 3000 };
    ob_offsets_t *t = ob_offsets_new();
    char *done = calloc(N, 1);
    int64_t *inflight = malloc(WINDOW * sizeof(int64_t));
    size_t nin = 0;
    int64_t next = 0, committed = 0;
    srand(7);
    while (next < N || nin > 0) {
        if (next < N && nin < WINDOW && (rand() % 2 || nin == 0)) {
            assert_int_equal(ob_offsets_add(t, "t", 3, next), OB_OK);
            inflight[nin++] = next++;
            continue;
        }
        size_t k = (size_t)rand() % nin;
        int64_t o = inflight[k];
        inflight[k] = inflight[--nin];
        done[o] = 1;
        int64_t c;
        int r = ob_offsets_done(t, "t", 3, o, &c);
        assert_true(r >= 0);
        int64_t low = committed;
        while (low < next && done[low])
            low++;
        if (r == 1) {
            assert_true(c > committed);
            committed = c;
        }
        assert_int_equal(committed, low);
    }
    assert_int_equal(committed, N);
    free(done);
    free(inflight);
    ob_offsets_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order_completion),
        cmocka_unit_test(test_gaps_and_partitions),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
