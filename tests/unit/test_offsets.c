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

/* What finished above the committable offset, as the bitmap a transaction's
 * offset metadata carries; and the committable offset itself. */
static void test_done_map(void **state)
{
    ob_offsets_t *t = ob_offsets_new();
    unsigned char map[4];
    assert_int_equal(ob_offsets_committable(t, "a", 0), -1);
    assert_int_equal(ob_offsets_done_map(t, "a", 0, 0, map, sizeof(map)), 0);
    for (int64_t o = 100; o < 140; o++)
        assert_int_equal(ob_offsets_add(t, "a", 0, o), OB_OK);
    assert_int_equal(ob_offsets_committable(t, "a", 0), 100);
    assert_int_equal(ob_offsets_done_map(t, "a", 0, 100, map, sizeof(map)), 0);
    int64_t c;
    assert_int_equal(ob_offsets_done(t, "a", 0, 101, &c), 0);
    assert_int_equal(ob_offsets_done(t, "a", 0, 109, &c), 0);
    assert_int_equal(ob_offsets_done(t, "a", 0, 132, &c), 0); /* beyond 4 bytes from 100 */
    assert_int_equal(ob_offsets_done_map(t, "a", 0, 100, map, sizeof(map)), 2);
    assert_int_equal(map[0], 0x02); /* 101 */
    assert_int_equal(map[1], 0x02); /* 109 */
    /* A larger map takes 132 too; a map from another base shifts. */
    unsigned char big[8];
    assert_int_equal(ob_offsets_done_map(t, "a", 0, 100, big, sizeof(big)), 5);
    assert_int_equal(big[4], 0x01); /* bit 32 */
    assert_int_equal(ob_offsets_done_map(t, "a", 0, 101, big, sizeof(big)), 4);
    assert_int_equal(big[0], 0x01);
    assert_int_equal(big[1], 0x01);
    assert_int_equal(big[3], 0x80);
    /* 100 finishes: the committable offset moves past 101 to 102. */
    assert_int_equal(ob_offsets_done(t, "a", 0, 100, &c), 1);
    assert_int_equal(c, 102);
    assert_int_equal(ob_offsets_committable(t, "a", 0), 102);
    assert_int_equal(ob_offsets_done_map(t, "a", 0, 102, map, sizeof(map)), 4);
    assert_int_equal(map[0], 0x80); /* 109 */
    assert_int_equal(map[3], 0x40); /* 132 */
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
    assert_int_equal(ob_offsets_last(t, "a", 0), 9);
    assert_int_equal(ob_offsets_last(t, "a", 1), 1);
    assert_int_equal(ob_offsets_last(t, "c", 0), -1);
    ob_offsets_forget(t, "a", 1);
    assert_int_equal(ob_offsets_last(t, "a", 1), -1); /* a new assignment starts anywhere */
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
        cmocka_unit_test(test_done_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
