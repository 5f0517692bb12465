/*
 * onboard-connect: the connect stage worker (see workers/stage_connect.c).
 *
 * Before handing over to the runtime it asks the stage to check the billing
 * settings (billing.url, billing.secret): the stage's parse() checks them
 * before reading any message and says "billing_config" when they are wrong,
 * so a misconfigured worker refuses to start instead of dead-lettering every
 * account. The reason never contains the secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "stages.h"

/* 0 when the billing settings are usable, else 2 with the reason on stderr. */
static int check_billing_settings(const char *argv0)
{
    char err[1024];
    ob_config_t cfg;
    if (ob_config_load(&cfg, NULL, NULL, NULL, err, sizeof(err)) != OB_OK)
        return 0; /* ob_worker_main reports it */
    void *st = ob_calloc(1, ob_stage_connect.state_size);
    ob_job_plan_t plan;
    ob_step_t fail;
    memset(&plan, 0, sizeof(plan));
    memset(&fail, 0, sizeof(fail));
    int rc = 0;
    if (st) {
        ob_stage_connect.parse(st, NULL, &cfg, "{}", 2, &plan, &fail);
        if (fail.kind == OB_STEP_FAIL && !strcmp(fail.code, "billing_config")) {
            fprintf(stderr, "%s: configuration: %s\n", argv0, fail.message);
            rc = 2;
        }
        ob_stage_connect.clear(st);
        free(st);
    }
    ob_step_clear(&fail);
    ob_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        int rc = check_billing_settings(argv[0]);
        if (rc)
            return rc;
    }
    return ob_worker_main(&ob_stage_connect, argc, argv);
}
