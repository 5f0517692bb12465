/*
 * testutil: file reading and service discovery for the tests.
 */
#include "testutil.h"

#include "sim.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ob_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

const char *ob_test_service_env(const char *var, const char *what)
{
    const char *v = getenv(var);
    if (v && *v)
        return v;
    const char *req = getenv("OB_TEST_REQUIRE_SERVICES");
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr, "FAILED: %s is required (OB_TEST_REQUIRE_SERVICES=1) but %s is not set\n",
                what, var);
        exit(1);
    }
    fprintf(stderr, "SKIPPED: %s not available (%s is not set); run scripts/test.sh\n", what, var);
    exit(OB_TEST_SKIP);
}

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t ob_test_spawn(char *const argv[], char *first_line, size_t first_line_size)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    char c;
    while (n + 1 < first_line_size && read(fds[0], &c, 1) == 1 && c != '\n')
        first_line[n++] = c;
    first_line[n] = '\0';
    close(fds[0]);
    return n ? pid : -1;
}

void ob_test_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

pid_t ob_test_sh_async(const char *cmd)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int ob_test_exited(pid_t pid, int *status)
{
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
        if (status)
            *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        return 1;
    }
    return 0;
}

int ob_test_run_until(ob_loop_t *loop, int (*done)(void *arg), void *arg, int timeout_ms)
{
    uint64_t end = ob_loop_update_time(loop) + (uint64_t)timeout_ms;
    while (!done(arg)) {
        uint64_t now = ob_loop_update_time(loop);
        if (now >= end)
            return 0;
        uint64_t left = end - now;
        ob_loop_run_once(loop, left > 100 ? 100 : (int)left);
    }
    return 1;
}

#include "ob_worker.h"

const char *ob_test_kv_lookup(const char *kv[][2], const char *name)
{
    for (int i = 0; kv[i][0]; i++)
        if (!strcmp(kv[i][0], name))
            return kv[i][1];
    return NULL;
}

void ob_test_kafka_defaults(ob_cfg_kv_t *kv, const char *brokers)
{
    ob_cfg_kv_set(kv, "bootstrap.servers", brokers);
    ob_cfg_kv_set(kv, "topic.metadata.refresh.interval.ms", "1000");
    ob_cfg_kv_set(kv, "session.timeout.ms", "6000");
    ob_cfg_kv_set(kv, "auto.commit.interval.ms", "200");
}

void ob_test_member_account(int i, char out[16])
{
    snprintf(out, 16, "%012llu", 200000000000ULL + (unsigned long long)i);
}

const char *ob_test_sim_env(const char *name, const char *sim_url)
{
    const char *kv[][2] = {{"AWS_ENDPOINT_URL", sim_url},
                           {"AWS_ACCESS_KEY_ID", SIM_MGMT_AKID},
                           {"AWS_SECRET_ACCESS_KEY", SIM_MGMT_SECRET},
                           {"AWS_REGION", "us-east-1"},
                           {"AWS_CONFIG_FILE", "/dev/null"},
                           {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                           {"AWS_EC2_METADATA_DISABLED", "true"},
                           {NULL, NULL}};
    return ob_test_kv_lookup(kv, name);
}

void ob_test_forget_members(int redis_port, int first, int last)
{
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return; /* no Redis: the test reports that itself */
    }
    for (int i = first; i <= last; i++) {
        char acct[16];
        ob_test_member_account(i, acct);
        redisAppendCommand(c, "DEL ob:{%s}:state ob:{%s}:replays", acct, acct);
    }
    for (int i = first; i <= last; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            break;
        freeReplyObject(r);
    }
    redisFree(c);
}

void ob_test_seed_report(struct sim_s *sim, const char *account, const char *name,
                         const char *bucket, const char *region)
{
    json_t *all = sim_section(sim, "reports");
    json_t *mine = json_object_get(all, account);
    if (!mine) {
        mine = json_object();
        json_object_set_new(all, account, mine);
    }
    json_object_set_new(mine, name,
                        json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:s, s:s, s:b, s:s}",
                                  "ReportName", name, "TimeUnit", "HOURLY", "Format", "textORcsv",
                                  "Compression", "GZIP", "AdditionalSchemaElements", "RESOURCES",
                                  "S3Bucket", bucket, "S3Prefix", "cur", "S3Region", region,
                                  "RefreshClosedReports", 1, "ReportVersioning",
                                  "OVERWRITE_REPORT"));
}

int ob_test_active_member(int k)
{
    return k + (k - 1) / 49;
}

int ob_test_worker_idle(void *worker)
{
    ob_worker_stats_t st;
    ob_worker_get_stats(worker, &st);
    return st.inflight == 0;
}

/* ---- Redis ---- */

void ob_test_redis_reply(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    ob_test_call_t *c = arg;
    c->done = 1;
    c->err = err;
    if (reply) {
        c->type = reply->type;
        c->integer = reply->integer;
        if (reply->str)
            snprintf(c->str, sizeof(c->str), "%.*s", (int)reply->len, reply->str);
    }
}

int ob_test_call_done(void *arg)
{
    return ((ob_test_call_t *)arg)->done;
}

int ob_test_redis_connected(void *arg)
{
    return ob_redis_connected(arg);
}

void ob_test_redis_cmd(ob_loop_t *loop, ob_redis_t *r, ob_test_call_t *c, const char *fmt,
                       const char *a, const char *b)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(ob_redis_command(r, ob_test_redis_reply, c, fmt, a, b), OB_OK);
    assert_true(ob_test_run_until(loop, ob_test_call_done, c, 15000));
}
