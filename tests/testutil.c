/*
 * testutil: file reading and service discovery for the tests.
 */
#include "testutil.h"

#include "sim.h"

#include <hiredis/hiredis.h>

#include <dirent.h>
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

pid_t ob_test_redis_server(int port, const char *extra_args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no %s%s"
             "--logfile /dev/null",
             port, extra_args ? extra_args : "", extra_args ? " " : "");
    return ob_test_sh_async(cmd);
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

static int never(void *arg)
{
    (void)arg;
    return 0;
}

void ob_test_run_for(ob_loop_t *loop, int ms)
{
    ob_test_run_until(loop, never, NULL, ms);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t ob_test_list_dir(const char *dir, const char *suffix, char ***out)
{
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0, sl = strlen(suffix);
    char **v = NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < sl || strcmp(e->d_name + l - sl, suffix) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[n++] = strdup(e->d_name);
    }
    if (d)
        closedir(d);
    if (n)
        qsort(v, n, sizeof *v, cmp_name);
    *out = v;
    return n;
}

void ob_test_free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int ob_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- HTTP ---- */

void ob_test_http_reply(ob_http_resp_t *resp, void *arg)
{
    ob_test_http_t *r = arg;
    r->done = 1;
    r->err = resp->err;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", resp->errmsg);
    r->status = resp->status;
    const char *ct = ob_hdrs_get(&resp->headers, "Content-Type");
    snprintf(r->content_type, sizeof(r->content_type), "%s", ct ? ct : "");
    r->body_len = resp->body.len;
    r->body = strndup(resp->body.data ? (const char *)resp->body.data : "", resp->body.len);
}

int ob_test_http_done(void *arg)
{
    return ((ob_test_http_t *)arg)->done;
}

void ob_test_http_send(ob_loop_t *loop, ob_http_t *http, const ob_http_req_t *req, int timeout_ms,
                       ob_test_http_t *res)
{
    memset(res, 0, sizeof(*res));
    char err[256];
    if (!ob_http_send(http, req, ob_test_http_reply, res, err, sizeof(err)))
        fail_msg("%s %s: %s", req->method, req->url, err);
    assert_true(ob_test_run_until(loop, ob_test_http_done, res, timeout_ms));
}

void ob_test_http(ob_loop_t *loop, ob_http_t *http, const char *method, const char *url,
                  const char *body, int timeout_ms, ob_test_http_t *res)
{
    ob_http_req_t req = {
        .method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0};
    ob_test_http_send(loop, http, &req, timeout_ms, res);
}

/* ---- stage hand-offs ---- */

void ob_test_handoff_init(ob_stage_msg_t *m, const char *request_json, ob_stage_t stage)
{
    ob_msg_error_t me;
    ob_stage_msg_init(m);
    if (ob_request_parse(request_json, strlen(request_json), &m->request, &me) != OB_OK)
        fail_msg("request: %s", me.message);
    m->stage = stage;
    if (m->request.mode == OB_MODE_NEW && stage > OB_STAGE_BUCKET) {
        ob_stage_fill_bucket(m);
        if (stage > OB_STAGE_CUR)
            ob_stage_fill_report(m);
    }
}

void ob_test_handoff_stack(ob_stage_msg_t *m, const char *stack_id, const char *role_arn,
                           const char *external_id)
{
    m->has_stack = 1;
    m->stack.id = ob_request_str(&m->request, stack_id);
    m->stack.name = "billing-engine-access";
    m->stack.role_arn = ob_request_str(&m->request, role_arn);
    m->stack.external_id = ob_request_str(&m->request, external_id);
}

void ob_test_handoff_trace(ob_stage_msg_t *m, ob_stage_t s, const char *worker,
                           const char *started_at, const char *finished_at)
{
    ob_trace_t *t = &m->trace[s];
    char now[OB_TIME_LEN];
    ob_msg_now(now);
    t->present = 1;
    t->started_at = ob_request_str(&m->request, started_at ? started_at : now);
    t->finished_at = ob_request_str(&m->request, finished_at ? finished_at : now);
    t->attempts = 1;
    t->worker = ob_request_str(&m->request, worker);
}

char *ob_test_handoff_json(ob_stage_msg_t *m)
{
    char *json = NULL;
    ob_msg_error_t me;
    if (ob_stage_to_json(m, &json, NULL, &me) != OB_OK)
        fail_msg("hand-off: %s", me.message);
    ob_stage_msg_clear(m);
    return json;
}

void ob_test_handoff_parse(const json_t *msg, ob_stage_msg_t *m, const char *who)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    ob_msg_error_t me;
    if (!text || ob_stage_parse(text, strlen(text), m, &me) != OB_OK)
        fail_msg("%s: %s", who, text ? me.message : "no hand-off");
    free(text);
}

/* ---- the Billing Engine's side ---- */

#include "ob_crypto.h"

void ob_test_billing_signature(const char *secret, const char *ts, const void *body, size_t len,
                               char out[OB_TEST_SIGNATURE_LEN])
{
    ob_buf_t text = {0};
    ob_buf_printf(&text, "%s.", ts);
    ob_buf_append(&text, body, len);
    uint8_t mac[OB_SHA256_LEN];
    char hex[OB_SHA256_HEX_LEN];
    ob_hmac_sha256(secret, strlen(secret), text.data, text.len, mac);
    ob_hex(mac, sizeof(mac), hex);
    snprintf(out, OB_TEST_SIGNATURE_LEN, "v1=%s", hex);
    ob_buf_free(&text);
}

/* ---- the simulator in process, and the project's AWS client for it ---- */

static const char *simfx_getenv(const char *name, void *ctx)
{
    ob_test_simfx_t *f = ctx;
    if (!strcmp(name, "AWS_ENDPOINT_URL"))
        return f->endpoint;
    if (!strcmp(name, "AWS_REGION"))
        return f->region;
    return NULL;
}

void ob_test_simfx_start(ob_test_simfx_t *f, const struct sim_opts_s *so, const char *region,
                         const ob_http_opts_t *ho, const char *member_role)
{
    char err[256];
    if (!f->loop)
        f->loop = ob_loop_new(NULL, 0);
    assert_non_null(f->loop);
    f->region = region;
    f->sim = sim_new(f->loop, so, err, sizeof(err));
    if (!f->sim)
        fail_msg("sim_new: %s", err);
    snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", sim_port(f->sim));
    f->http = ob_http_new(f->loop, ho, NULL, 0);
    assert_non_null(f->http);
    ob_aws_opts_t ao = {.getenv_fn = simfx_getenv, .env_ctx = f, .max_attempts = 1};
    f->aws = ob_aws_new(f->loop, f->http, &ao, err, sizeof(err));
    if (!f->aws)
        fail_msg("ob_aws_new: %s", err);
    f->mgmt = ob_credsrc_static(f->aws, SIM_MGMT_AKID, SIM_MGMT_SECRET, NULL, "management");
    assert_non_null(f->mgmt);
    f->member = member_role ? ob_credsrc_assume_role(f->aws, f->mgmt, member_role, NULL, "test", 0,
                                                     "us-east-1")
                            : NULL;
}

json_t *ob_test_simfx_admin(ob_test_simfx_t *f, const char *method, const char *path,
                            const char *body, long want_status)
{
    char url[512];
    ob_test_http_t a;
    snprintf(url, sizeof(url), "%s%s", f->endpoint, path);
    ob_test_http(f->loop, f->http, method, url, body, 10000, &a);
    json_t *j = json_loads(a.body, 0, NULL);
    if (a.status != want_status)
        fail_msg("%s %s: status %ld, wanted %ld: %s", method, path, a.status, want_status, a.body);
    free(a.body);
    assert_string_equal(a.content_type, "application/json");
    assert_non_null(j);
    return j;
}

int ob_test_simfx_teardown(void **state)
{
    ob_test_simfx_stop(*state, 0);
    free(*state);
    return 0;
}

void ob_test_simfx_stop(ob_test_simfx_t *f, int keep_loop)
{
    ob_credsrc_unref(f->member);
    ob_credsrc_unref(f->mgmt);
    ob_aws_free(f->aws);
    ob_http_free(f->http);
    sim_free(f->sim);
    f->member = f->mgmt = NULL;
    f->aws = NULL;
    f->http = NULL;
    f->sim = NULL;
    if (!keep_loop) {
        ob_loop_free(f->loop);
        f->loop = NULL;
    }
}

static void got_answer(ob_aws_result_t *res, void *arg)
{
    ob_test_got_t *g = arg;
    g->done = 1;
    g->err = res->err;
    g->status = res->status;
    if (res->err == OB_ERR_AWS) {
        snprintf(g->code, sizeof(g->code), "%s", res->aws.code);
        snprintf(g->message, sizeof(g->message), "%s", res->aws.message);
    } else if (res->err != OB_OK) {
        snprintf(g->message, sizeof(g->message), "%s", res->errmsg);
    }
    g->body = strdup(res->body.data ? res->body.data : "");
    g->json = json_loadb(g->body, strlen(g->body), 0, NULL);
    for (size_t i = 0; res->headers && i < res->headers->n; i++)
        ob_hdrs_add(&g->headers, res->headers->v[i].name, res->headers->v[i].value);
}

int ob_test_got_done(void *got)
{
    return ((ob_test_got_t *)got)->done;
}

typedef struct got_all_s {
    ob_test_got_t *g;
    int n;
} got_all_t;

static int got_all(void *arg)
{
    const got_all_t *a = arg;
    for (int i = 0; i < a->n; i++)
        if (!a->g[i].done)
            return 0;
    return 1;
}

void ob_test_got_wait_all(ob_test_simfx_t *f, ob_test_got_t *g, int n, int timeout_ms)
{
    got_all_t a = {g, n};
    if (!ob_test_run_until(f->loop, got_all, &a, timeout_ms))
        fail_msg("%d calls sent together: not all answered within %d ms", n, timeout_ms);
}

void ob_test_got_free(ob_test_got_t *g)
{
    free(g->body);
    json_decref(g->json);
    ob_hdrs_clear(&g->headers);
    memset(g, 0, sizeof(*g));
}

void ob_test_aws_send(ob_test_simfx_t *f, ob_aws_req_t *req, const ob_aws_target_t *t,
                      ob_test_got_t *g)
{
    char err[512];
    memset(g, 0, sizeof(*g));
    if (!ob_aws_send(f->aws, req, t, got_answer, g, err, sizeof(err)))
        fail_msg("send: %s", err);
}

void ob_test_aws_call(ob_test_simfx_t *f, ob_aws_req_t *req, const ob_aws_target_t *t,
                      ob_test_got_t *g, int timeout_ms)
{
    ob_test_aws_send(f, req, t, g);
    if (!ob_test_run_until(f->loop, ob_test_got_done, g, timeout_ms))
        fail_msg("no answer in %d ms", timeout_ms);
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
        redisAppendCommand(c, "DEL ob:{%s}:state ob:{%s}:replays ob:{%s}:history", acct, acct,
                           acct);
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

ob_config_t ob_test_lifecycle_config(void)
{
    ob_config_t c;
    memset(&c, 0, sizeof(c));
    c.lifecycle_region = (char *)"eu-west-1";
    c.lifecycle_mode = (char *)"new";
    c.lifecycle_ou_modes = (char *)"";
    c.lifecycle_role_name = (char *)"OrganizationAccountAccessRole";
    c.lifecycle_ct_role_name = (char *)"AWSControlTowerExecution";
    c.lifecycle_include_ous = c.lifecycle_exclude_ous = (char *)"";
    c.lifecycle_include_accounts = c.lifecycle_exclude_accounts = (char *)"";
    return c;
}
