/*
 * onboard-verify: the verify stage worker (see workers/stage_verify.c): it
 * checks connected accounts against what the fleet made, as onboardctl
 * verify and the fleet's periodic verification ask, on its own topic and
 * with its own rate limits, so that verification never slows onboarding.
 */
#include "stages.h"

int main(int argc, char **argv)
{
    return ob_worker_main(&ob_stage_verify, argc, argv);
}
