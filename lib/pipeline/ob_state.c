#include "ob_state.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ob_msg.h"

const char *const OB_STATE_ACCOUNT_FIELDS[] = {OB_ST_CONNECTED_REQUEST,
                                               OB_ST_CONNECTED_DESIRED,
                                               OB_ST_CONNECTED_AT,
                                               OB_ST_IDEMPOTENCY_KEY,
                                               OB_ST_ROLE_ARN,
                                               OB_ST_BUCKETS,
                                               OB_ST_OLD_BUCKETS,
                                               OB_ST_REPORTS,
                                               OB_ST_STACKS,
                                               OB_ST_SUPERSEDED,
                                               OB_ST_DISCONNECTED_AT,
                                               OB_ST_DISCONNECT_KEY,
                                               OB_ST_CONNECTED_SPEC,
                                               NULL};

static void key_of(const char *account, const char *what, char *out, size_t outsz)
{
    snprintf(out, outsz, "ob:{%s}:%s", account, what);
}

void ob_state_key(const char *account, char *out, size_t outsz)
{
    key_of(account, "state", out, outsz);
}

void ob_state_lock_key(const char *account, char *out, size_t outsz)
{
    key_of(account, "lock", out, outsz);
}

void ob_state_fence_key(const char *account, char *out, size_t outsz)
{
    key_of(account, "fence", out, outsz);
}

void ob_state_replays_key(const char *account, char *out, size_t outsz)
{
    key_of(account, "replays", out, outsz);
}

void ob_state_history_key(const char *account, char *out, size_t outsz)
{
    key_of(account, "history", out, outsz);
}

char *ob_state_history_entry(const char *at, const char *event, const char *request_id,
                             const char *stage, const char *key, const char *detail)
{
    char now[OB_TIME_LEN];
    if (!at) {
        ob_msg_now(now);
        at = now;
    }
    json_t *o = json_pack("{s:s, s:s}", "at", at, "event", event);
    const char *names[] = {"request_id", "stage", "key", "detail"};
    const char *values[] = {request_id, stage, key, detail};
    for (int i = 0; o && i < 4; i++)
        if (values[i] && values[i][0])
            json_object_set_new(o, names[i], json_string(values[i]));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

int ob_state_account_of(const char *key, char *out, size_t outsz)
{
    static const char head[] = "ob:{", tail[] = "}:state";
    size_t n = strlen(key), hl = sizeof(head) - 1, tl = sizeof(tail) - 1;
    if (n <= hl + tl || strncmp(key, head, hl) != 0 || strcmp(key + n - tl, tail) != 0 ||
        n - hl - tl >= outsz)
        return -1;
    memcpy(out, key + hl, n - hl - tl);
    out[n - hl - tl] = '\0';
    return 0;
}
