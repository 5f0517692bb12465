/*
 * The end every stage's hand-off shares: its own trace entry, the message
 * encoded (and so checked by the codec, as the next stage will read it),
 * and the DONE step that produces it to the next topic.
 */
#include <stdio.h>
#include <string.h>

#include "stages.h"

int ob_stage_hand_on(ob_stage_msg_t *m, ob_stage_t done, const char *started_at, ob_step_t *out)
{
    if (done != OB_STAGE_INTAKE) {
        char now[OB_TIME_LEN];
        ob_msg_now(now);
        m->trace[done] = (ob_trace_t){1, ob_request_str(&m->request, started_at),
                                      ob_request_str(&m->request, now), 1, ob_stage_name(done)};
    }
    ob_msg_error_t me;
    char *json = NULL;
    ob_err_t e = ob_stage_to_json(m, &json, NULL, &me);
    const char *schema = ob_stage_schema_of(&m->request);
    ob_stage_t next = m->stage;
    ob_stage_msg_clear(m);
    if (e != OB_OK) {
        /* The codec never echoes an ExternalId in its messages. */
        ob_step_fail(out, OB_DLQ_PERMANENT, me.code[0] ? me.code : "hand_off",
                     "cannot build the hand-off: %s", me.message);
        snprintf(out->field, sizeof(out->field), "%s", me.field);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    out->kind = OB_STEP_DONE;
    out->emit = json;
    out->emit_topic = ob_stage_name(next); /* each stage's topic is its name */
    out->emit_schema = schema;
    return 0;
}
