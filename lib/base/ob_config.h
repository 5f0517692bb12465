/*
 * ob_config: one table of settings, read from an optional file and the
 * environment.
 *
 * Every setting has a dotted name ("redis.port"), a type, a default, bounds
 * and a line of help; the environment variable is OB_ plus the name in upper
 * case with dots as underscores (OB_REDIS_PORT). Sources, lowest precedence
 * first: the table's defaults, the file (`key = value` lines, `#` comments),
 * the environment. Unknown keys are errors, so typos are caught at start-up.
 *
 * Keys starting with "kafka." are not in the table: they are collected and
 * passed unchanged to librdkafka (`kafka.bootstrap.servers=...` in the file,
 * OB_KAFKA_BOOTSTRAP_SERVERS in the environment, underscores read as dots).
 *
 * A program may have its own table (ob_cfg_def_t rows pointing into its own
 * struct) and load it with ob_cfg_load(); ob_config_t is the table shared by
 * every worker.
 *
 * Ownership: strings stored in a target struct are malloc'd and released by
 * ob_cfg_free() for the same table. Threading: load once at start-up on the
 * main thread; read-only afterwards.
 */
#ifndef OB_CONFIG_H
#define OB_CONFIG_H

#include <stddef.h>

#include "ob_err.h"

typedef const char *(*ob_getenv_fn)(const char *name, void *ctx);

typedef enum ob_cfg_type_e {
    OB_CFG_STR = 0,
    OB_CFG_INT,  /* long long, bounded */
    OB_CFG_BOOL, /* int 0/1: true/false, yes/no, on/off, 1/0 */
    OB_CFG_MS,   /* long long milliseconds: "250ms", "30s", "5m", "1h" or a bare number of ms */
    OB_CFG_SIZE  /* long long bytes: "512", "64k", "16M", "1G" (binary multiples) */
} ob_cfg_type_t;

typedef struct ob_cfg_def_s {
    const char *name;
    ob_cfg_type_t type;
    const char *defval; /* as text, parsed like any other source; NULL = empty string */
    long long min, max; /* bounds for INT/MS/SIZE (inclusive) */
    size_t offset;      /* where the value lives in the target struct */
    int secret;         /* never shown by ob_cfg_describe() */
    const char *help;
} ob_cfg_def_t;

/* "kafka.*" settings collected in file order, environment last. */
typedef struct ob_cfg_kv_s {
    char **keys; /* without the "kafka." prefix */
    char **values;
    size_t n;
} ob_cfg_kv_t;

/* Load `table` into `target`. file may be NULL (no file). getenv_fn NULL means
 * getenv. kafka (may be NULL: then kafka.* keys are errors) receives the
 * passthrough keys. On error, errstr names the key, the source (file:line or
 * environment variable) and the reason. */
ob_err_t ob_cfg_load(const ob_cfg_def_t *table, size_t n, void *target, const char *file,
                     ob_getenv_fn getenv_fn, void *env_ctx, ob_cfg_kv_t *kafka, char *errstr,
                     size_t errstr_size);
void ob_cfg_free(const ob_cfg_def_t *table, size_t n, void *target);
void ob_cfg_kv_free(ob_cfg_kv_t *kv);
/* Value of a passthrough key or NULL. */
const char *ob_cfg_kv_get(const ob_cfg_kv_t *kv, const char *key);
ob_err_t ob_cfg_kv_set(ob_cfg_kv_t *kv, const char *key, const char *value);

/* Parsers, exposed for tests and for programs that take flags. */
ob_err_t ob_cfg_parse_ms(const char *s, long long *out);
ob_err_t ob_cfg_parse_size(const char *s, long long *out);
ob_err_t ob_cfg_parse_bool(const char *s, int *out);

/* The settings every worker shares. */
typedef struct ob_config_s {
    char *log_level;
    char *topic_prefix;
    char *redis_host;
    long long redis_port;
    char *redis_password;
    long long redis_db;
    int redis_tls;
    char *redis_tls_ca;
    char *redis_tls_cert;
    char *redis_tls_key;
    char *redis_tls_server_name;
    char *redis_sentinels;
    char *redis_sentinel_master;
    char *redis_sentinel_password;
    long long redis_command_timeout_ms;
    long long redis_connect_timeout_ms;
    long long http_timeout_ms;
    long long http_connect_timeout_ms;
    long long http_max_body;
    long long http_max_connections;
    long long aws_max_attempts;
    long long aws_max_backoff_ms;
    long long inflight_max;
    long long run_max;
    long long metrics_port;
    char *metrics_bind;
    char *billing_principal;
    char *billing_url;
    char *billing_secret;
    char *session_keys; /* session.keys: seal assumed-role sessions for the next stage */
    char *stack_name_prefix;
    long long stack_poll_ms;
    long long stack_redo_max;
    long long connect_retries;
    long long connect_retry_ms;
    long long stage_retry_max;
    long long stage_retry_wait_ms;
    long long stage_retry_max_wait_ms;
    long long stage_retry_window_ms; /* floor of the attempts' total window */
    /* Per retry reason (ob_retry_reason_t order: other, throttling,
     * transient, timeout, busy); 0: stage_retry_max / stage_retry_wait_ms. */
    long long stage_retry_class_max[5];
    long long stage_retry_class_wait_ms[5];
    long long lock_ttl_ms;
    char *rate_limits;
    int output_transactions;
    int intake_org_check;       /* intake.organization.check */
    int intake_org_standing;    /* intake.organization.standing */
    int intake_allow_outside;   /* intake.allow.outside.accounts */
    int intake_existing_report; /* intake.existing.report.check */
    long long output_commit_interval_ms;
    char *instance_id;
    /* lifecycle.*: the accounts the fleet onboards by itself (ob_lifecycle) */
    char *lifecycle_region;
    char *lifecycle_mode;
    char *lifecycle_ou_modes;
    char *lifecycle_role_name;
    char *lifecycle_ct_role_name;
    char *lifecycle_include_ous;
    char *lifecycle_exclude_ous;
    char *lifecycle_include_accounts;
    char *lifecycle_exclude_accounts;
    /* watcher.*, verify.*, lifecycle.lease.ttl: the onboard-lifecycle process */
    long long watcher_interval_ms;
    long long watcher_max_per_interval;
    long long verify_interval_ms;
    int verify_repair;
    long long verify_max_per_round;
    long long lifecycle_lease_ttl_ms;
    /* lag.*: the onboard-lag-exporter process */
    long long lag_interval_ms;
    char *lag_cluster_name;
    ob_cfg_kv_t kafka;
} ob_config_t;

extern const ob_cfg_def_t ob_config_table[];
extern const size_t ob_config_table_len;

/* Load the shared settings; file from OB_CONFIG_FILE when `file` is NULL. */
ob_err_t ob_config_load(ob_config_t *cfg, const char *file, ob_getenv_fn getenv_fn, void *env_ctx,
                        char *errstr, size_t errstr_size);
void ob_config_free(ob_config_t *cfg);

#endif
