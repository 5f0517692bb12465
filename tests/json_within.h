/*
 * json_within.h: whether one JSON value says no more than another, for the
 * codec's tests and its fuzz target alike (header only: the fuzz build links
 * none of the cmocka helpers).
 */
#ifndef OB_TEST_JSON_WITHIN_H
#define OB_TEST_JSON_WITHIN_H

#include <jansson.h>

/* Every member of a is in b with the same value; b may add members (a
 * message's defaults written out). Arrays match element by element. */
static inline int ob_json_within(const json_t *a, const json_t *b)
{
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            if (!ob_json_within(v, json_object_get(b, k)))
                return 0;
        }
        return json_is_object(b);
    }
    if (json_is_array(a)) {
        if (!json_is_array(b) || json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!ob_json_within(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    return b && json_equal(a, b);
}

#endif
