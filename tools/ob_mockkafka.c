/*
 * ob-mockkafka: librdkafka's built-in mock cluster in a process of its own,
 * for the quickstart (one machine, nothing to install). It speaks the Kafka
 * protocol on loopback, with consumer groups and committed offsets, so the
 * workers, onboardctl and kcat connect to it like to any broker.
 *
 *   ob-mockkafka [--brokers N] [--partitions N] [--prefix P] [--bootstrap-file F]
 *
 * Creates the pipeline's topics (P + requests, cur, iam, connect, connected,
 * dlq) with N partitions, prints "bootstrap.servers=HOST:PORT,...", writes it
 * to F when asked, and runs until SIGINT or SIGTERM. Not for production: the
 * data lives in memory.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    int brokers = 1, partitions = 8;
    const char *prefix = "onboard.", *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--brokers") && i + 1 < argc)
            brokers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--partitions") && i + 1 < argc)
            partitions = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefix") && i + 1 < argc)
            prefix = argv[++i];
        else if (!strcmp(argv[i], "--bootstrap-file") && i + 1 < argc)
            file = argv[++i];
        else {
            fprintf(stderr, "usage: ob-mockkafka [--brokers N] [--partitions N] [--prefix P] "
                            "[--bootstrap-file F]\n");
            return !strcmp(argv[i], "--help") ? 0 : 2;
        }
    }
    if (brokers < 1 || partitions < 1) {
        fprintf(stderr, "ob-mockkafka: --brokers and --partitions must be positive\n");
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "ob-mockkafka: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "ob-mockkafka: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    static const char *const topics[] = {"requests",  "cur", "iam", "connect",
                                         "connected", "dlq", NULL};
    for (int i = 0; topics[i]; i++) {
        char name[256];
        snprintf(name, sizeof(name), "%s%s", prefix, topics[i]);
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, partitions, 1);
        if (e) {
            fprintf(stderr, "ob-mockkafka: topic %s: %s\n", name, rd_kafka_err2str(e));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    printf("bootstrap.servers=%s\n", bs);
    fflush(stdout);
    if (file) {
        FILE *f = fopen(file, "w");
        if (!f || fprintf(f, "%s\n", bs) < 0 || fclose(f) != 0) {
            fprintf(stderr, "ob-mockkafka: cannot write %s\n", file);
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop)
        pause();
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
