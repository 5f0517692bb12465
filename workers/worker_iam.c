/* onboard-iam: the iam stage worker (see workers/stage_iam.c). */
#include "stages.h"

int main(int argc, char **argv)
{
    return ob_worker_main(&ob_stage_iam, argc, argv);
}
