/*
 * awssim: run the local AWS endpoint.
 *
 *   awssim [--port N] [--bind ADDR] [--org-accounts N] [--seed FILE]
 *          [--profile instant|aws-typical|aws-quotas] [--scale F] [--state-file FILE]
 *          [--latency API=SPEC]... [--fault API=KIND:RATE|KIND:count=N]...
 *          [--quotas aws|none] [--quota API=RATE[/BURST]]...
 *          [--port-file FILE] [--log-level LEVEL]
 *
 * Prints one line "awssim listening on http://ADDR:PORT" (and writes the
 * port to --port-file when given) once it accepts connections; stops on
 * SIGINT or SIGTERM, saving the state file if one is configured.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_log.h"
#include "sim.h"

#define MAX_LIST 128

static void usage(FILE *f)
{
    fprintf(f, "usage: awssim [--port N] [--bind ADDR] [--org-accounts N] [--seed FILE]\n"
               "              [--profile instant|aws-typical|aws-quotas] [--scale F]\n"
               "              [--state-file FILE] [--latency API=SPEC]...\n"
               "              [--fault API=KIND:RATE|KIND:count=N]...\n"
               "              [--quotas aws|none] [--quota API=RATE[/BURST]]...\n"
               "              [--port-file FILE] [--log-level LEVEL] [--random-seed N]\n"
               "API is SERVICE.Operation (s3.CreateBucket), SERVICE.* or *; work that takes\n"
               "time has exact names: cloudformation.stack_{create,update,delete},\n"
               "cloudformation.drift_detect, organizations.account_create.\n"
               "SPEC is 250ms, 2s or 100ms-300ms; KIND is throttle, 500, 503, reset, hang, "
               "truncate,\n"
               "or rollback (cloudformation.stack_create only: a stack fails to create, once "
               "per name).\n"
               "--quotas aws throttles as AWS's request quotas do (default none; the profile\n"
               "aws-quotas is aws-typical with them); --quota sets or overrides one rule:\n"
               "API is SERVICE.Operation or SERVICE.* (one bucket the service's operations\n"
               "without a rule share), RATE requests per second, BURST tokens (default RATE).\n");
}

static void on_signal(ob_signal_t *s, int signo, void *arg)
{
    ob_loop_stop(arg);
}

int main(int argc, char **argv)
{
    json_set_alloc_funcs(ob_malloc, free); /* the out-of-memory policy: ob_alloc.h */
    sim_opts_t o;
    memset(&o, 0, sizeof(o));
    const char *latency[MAX_LIST + 1] = {NULL}, *faults[MAX_LIST + 1] = {NULL},
                                   *quota[MAX_LIST + 1] = {NULL};
    int nl = 0, nf = 0, nq = 0;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            used = 0;
        } else if (!strcmp(a, "--port")) {
            o.port = atoi(v);
        } else if (!strcmp(a, "--bind")) {
            o.bind_addr = v;
        } else if (!strcmp(a, "--org-accounts")) {
            o.org_accounts = atoi(v);
        } else if (!strcmp(a, "--seed")) {
            o.seed_file = v;
        } else if (!strcmp(a, "--profile")) {
            o.profile = v;
        } else if (!strcmp(a, "--scale")) {
            o.scale = atof(v);
        } else if (!strcmp(a, "--state-file")) {
            o.state_file = v;
        } else if (!strcmp(a, "--latency") && nl < MAX_LIST) {
            latency[nl++] = v;
        } else if (!strcmp(a, "--fault") && nf < MAX_LIST) {
            faults[nf++] = v;
        } else if (!strcmp(a, "--quotas")) {
            o.quotas = v;
        } else if (!strcmp(a, "--quota") && nq < MAX_LIST) {
            quota[nq++] = v;
        } else if (!strcmp(a, "--port-file")) {
            port_file = v;
        } else if (!strcmp(a, "--random-seed")) {
            o.random_seed = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--log-level")) {
            int l = ob_log_level_parse(v);
            if (l < 0) {
                fprintf(stderr, "awssim: unknown log level %s\n", v);
                return 2;
            }
            ob_log_set_level((ob_log_level_t)l);
        } else {
            used = 0;
        }
        if (!used) {
            fprintf(stderr, "awssim: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (o.org_accounts < 0 || o.org_accounts > 1000000) {
        fprintf(stderr, "awssim: --org-accounts must be between 0 and 1000000\n");
        return 2;
    }
    o.latency = latency;
    o.faults = faults;
    o.quota = quota;
    ob_log_set_service("awssim");
    char err[512];
    ob_loop_t *loop = ob_loop_new(err, sizeof(err));
    if (!loop) {
        fprintf(stderr, "awssim: %s\n", err);
        return 1;
    }
    const int sigs[] = {SIGINT, SIGTERM};
    ob_signal_t *sig = ob_signal_new(loop, sigs, 2, on_signal, loop, err, sizeof(err));
    signal(SIGPIPE, SIG_IGN);
    sim_t *sim = sig ? sim_new(loop, &o, err, sizeof(err)) : NULL;
    if (!sim) {
        fprintf(stderr, "awssim: %s\n", err);
        ob_signal_free(sig);
        ob_loop_free(loop);
        return 1;
    }
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%d\n", sim_port(sim)) < 0 || fclose(f) != 0) {
            fprintf(stderr, "awssim: cannot write %s\n", port_file);
            sim_free(sim);
            ob_loop_free(loop);
            return 1;
        }
    }
    printf("awssim listening on http://%s:%d\n", o.bind_addr ? o.bind_addr : "127.0.0.1",
           sim_port(sim));
    fflush(stdout);
    ob_err_t e = ob_loop_run(loop);
    sim_free(sim);
    ob_signal_free(sig);
    ob_loop_free(loop);
    return e == OB_OK ? 0 : 1;
}
