/*
 * ctl_cli: the options every onboardctl command takes, spelled as kcat and
 * Kafka's own scripts spell them, and the settings they make (see ctl.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ob_alloc.h"
#include "ob_log.h"

#ifndef OB_VERSION
#define OB_VERSION "dev"
#endif

static void add_set(ctl_cli_t *cli, const char *flag, const char *key, const char *value)
{
    cli->sets = ob_realloc(cli->sets, (cli->nsets + 1) * sizeof(*cli->sets));
    cli->flags = ob_realloc(cli->flags, (cli->nsets + 1) * sizeof(*cli->flags));
    size_t n = strlen(key) + strlen(value) + 2;
    char *kv = ob_malloc(n);
    snprintf(kv, n, "%s=%s", key, value);
    cli->sets[cli->nsets] = kv;
    cli->flags[cli->nsets++] = flag;
}

/* Whether argv[*i] is the option -s / --long, its value (the next argument,
 * or glued: -sVALUE, --long=VALUE) in *value. *missing when the value is. */
static int option(int argc, char **argv, int *i, const char *s, const char *l, const char **value,
                  int *missing)
{
    const char *a = argv[*i];
    size_t ll = l ? strlen(l) : 0;
    if ((s && !strcmp(a, s)) || (l && !strcmp(a, l))) {
        if (*i + 1 >= argc) {
            *missing = 1;
            return 1;
        }
        *value = argv[++*i];
        return 1;
    }
    if (s && !strncmp(a, s, 2) && a[2]) {
        *value = a + 2;
        return 1;
    }
    if (l && !strncmp(a, l, ll) && a[ll] == '=') {
        *value = a + ll + 1;
        return 1;
    }
    return 0;
}

/* One global option at argv[*i]: 1 taken, 0 not one, -1 a usage error. */
static int global_option(ctl_cli_t *cli, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    int missing = 0;
    if (!strcmp(a, "--json")) {
        cli->json = 1;
    } else if (!strcmp(a, "--version")) {
        cli->version = 1;
    } else if (option(argc, argv, i, "-o", "--output", &v, &missing)) {
        if (missing || (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)) {
            fprintf(stderr, "onboardctl: %s takes table or json\n", a);
            return -1;
        }
        cli->json = !strcmp(v, "json");
    } else if (option(argc, argv, i, "-b", "--bootstrap-server", &v, &missing)) {
        if (missing || !v[0]) {
            fprintf(stderr, "onboardctl: %s takes the brokers, host:port[,host:port...]\n", a);
            return -1;
        }
        add_set(cli, "-b", "bootstrap.servers", v);
    } else if (option(argc, argv, i, "-X", NULL, &v, &missing)) {
        const char *eq = missing ? NULL : strchr(v, '=');
        if (!eq || eq == v) {
            fprintf(stderr,
                    "onboardctl: -X takes key=value: a setting of the fleet (redis.port=6380) or a "
                    "librdkafka property (security.protocol=ssl)\n");
            return -1;
        }
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - v), v);
        add_set(cli, "-X", key, eq + 1);
    } else if (option(argc, argv, i, NULL, "--config", &v, &missing)) {
        if (missing) {
            fprintf(stderr, "onboardctl: --config takes a file of key = value lines\n");
            return -1;
        }
        cli->config_file = v;
    } else {
        return 0;
    }
    return 1;
}

int ctl_cli_parse(int argc, char **argv, ctl_cli_t *cli)
{
    memset(cli, 0, sizeof(*cli));
    cli->argv = ob_calloc((size_t)argc + 1, sizeof(*cli->argv));
    for (int i = 1; i < argc; i++) {
        int r = global_option(cli, argc, argv, &i);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0)
            cli->argv[cli->argc++] = argv[i];
    }
    return 0;
}

void ctl_cli_free(ctl_cli_t *cli)
{
    for (size_t i = 0; i < cli->nsets; i++)
        free(cli->sets[i]);
    free(cli->sets);
    free(cli->flags);
    free(cli->argv);
    memset(cli, 0, sizeof(*cli));
}

typedef struct one_s {
    const char *value;
    char name[160]; /* the variable ob_cfg_load asked for */
} one_t;

static const char *one_value(const char *name, void *ctx)
{
    one_t *o = ctx;
    snprintf(o->name, sizeof(o->name), "%s", name);
    return o->value;
}

/* A setting of the fleet's table from a flag: the table's own parser and
 * bounds (its row loaded alone, the flag's value as its only source); an
 * error names the flag, not the variable the loader asked for. */
static int fleet_set(ctl_t *c, const ob_cfg_def_t *d, const char *value, const char *flag)
{
    one_t o = {value, ""};
    char err[1024];
    if (ob_cfg_load(d, 1, &c->cfg, NULL, one_value, &o, NULL, err, sizeof(err)) == OB_OK)
        return 0;
    char from[200];
    snprintf(from, sizeof(from), "(from %s)", o.name);
    char *at = o.name[0] ? strstr(err, from) : NULL;
    if (at)
        fprintf(stderr, "onboardctl: %.*s(from %s)%s\n", (int)(at - err), err, flag,
                at + strlen(from));
    else
        fprintf(stderr, "onboardctl: %s: %s\n", flag, err);
    return EXIT_USAGE;
}

/* A librdkafka property from a flag, tried on a configuration of its own
 * first: librdkafka says what is wrong with it (never echoing the value,
 * which may be a password). */
static int kafka_set(ctl_t *c, const char *key, const char *value, const char *flag)
{
    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, value, why, sizeof(why));
    rd_kafka_conf_destroy(conf);
    if (r != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "onboardctl: %s %s: %s%s\n", flag, key, why,
                r == RD_KAFKA_CONF_UNKNOWN ? " (neither a setting of the fleet nor a librdkafka "
                                             "property: see onboardctl --help)"
                                           : "");
        return EXIT_USAGE;
    }
    if (ob_cfg_kv_set(&c->cfg.kafka, key, value) != OB_OK) {
        fprintf(stderr, "onboardctl: out of memory\n");
        return EXIT_RUNTIME;
    }
    return 0;
}

static int config_set(ctl_t *c, const char *kv, const char *flag)
{
    const char *eq = strchr(kv, '=');
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    for (size_t i = 0; i < ob_config_table_len; i++)
        if (!strcmp(ob_config_table[i].name, key))
            return fleet_set(c, &ob_config_table[i], eq + 1, flag);
    return kafka_set(c, strncmp(key, "kafka.", 6) ? key : key + 6, eq + 1, flag);
}

int ctl_config_load(ctl_t *c, const ctl_cli_t *cli)
{
    char err[1024];
    if (ob_config_load(&c->cfg, cli->config_file, NULL, NULL, err, sizeof(err)) != OB_OK) {
        fprintf(stderr, "onboardctl: configuration: %s\n", err);
        return EXIT_USAGE;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < cli->nsets; i++)
        rc = config_set(c, cli->sets[i], cli->flags[i]);
    if (rc == 0 && ob_log_level_parse(c->cfg.log_level) < 0) {
        fprintf(stderr,
                "onboardctl: log.level: \"%.32s\" is not one of debug, info, warn, error, "
                "off\n",
                c->cfg.log_level);
        rc = EXIT_USAGE;
    }
    if (rc != 0)
        ob_config_free(&c->cfg);
    return rc;
}

int ctl_version(ctl_t *c, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "onboardctl version: unknown argument %s (try --help)\n", argv[0]);
        return EXIT_USAGE;
    }
    if (c->json)
        ctl_json_print(
            json_pack("{s:s, s:s}", "version", OB_VERSION, "librdkafka", rd_kafka_version_str()));
    else
        printf("onboardctl %s (librdkafka %s)\n", OB_VERSION, rd_kafka_version_str());
    return 0;
}
