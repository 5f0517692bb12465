/* onboard-cur: the CUR stage worker (see workers/stage_cur.c). */
#include "stages.h"

int main(int argc, char **argv)
{
    return ob_worker_main(&ob_stage_cur, argc, argv);
}
