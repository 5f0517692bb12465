/* onboard-bucket: the bucket stage worker (see workers/stage_bucket.c). */
#include "stages.h"

int main(int argc, char **argv)
{
    return ob_worker_main(&ob_stage_bucket, argc, argv);
}
