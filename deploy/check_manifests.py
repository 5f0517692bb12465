#!/usr/bin/env python3
"""Checks of the deployment files that no schema expresses, for scripts/check-deploy.sh.

  check_manifests.py chart RENDER.yaml --prefix P [--workers K,K] [--lifecycle-replicas N
                    --lifecycle-jobs J,J --lifecycle-alerts A,A] [--lag-exporter-replicas N
                    --lag-interval D --lag-cluster-name C --lag-alerts A,A] [--all] [--app-version V]
                    [--network-policy on|off] [--session-keys SECRET/KEY|off] [--overlays VALUES.yaml]
                    --builtin OUT.yaml [--rules OUT.yml]
      The rendered chart: every object carries the recommended labels (app.kubernetes.io/
      name, instance, version, managed-by, part-of, helm.sh/chart), every pod template
      those and its component, selectors only name, instance and component; the
      NetworkPolicy (when on) selects every pod of the release by name and instance,
      lets in only the metrics port and lets out DNS, the Kafka, Redis and HTTPS ports
      the workers' settings name; with --overlays, what that values file adds (common
      and pod labels and annotations, extra env, volumes, mounts and containers, pull
      secrets, the image by registry) is on every object or pod it is meant for.
      Every Deployment runs its worker non-root, read-only, with
      no capabilities, probes on /healthz and /readyz at the metrics port, a grace
      period longer than the 20 s drain, secrets only by reference; a PDB, and with
      --all a ScaledObject (right group and topic, an existing TriggerAuthentication,
      no fixed replicas), a Service and a ServiceMonitor that selects them, the IRSA
      annotation. The lifecycle process the same way, but always a Deployment of its
      own replica count that no ScaledObject scales, a PDB that keeps one replica,
      its jobs' settings, and its alerts (and no lag alert on it). The lag exporter
      likewise a Deployment of its own (one replica) that no ScaledObject scales, with
      its settings (lag.interval, lag.cluster.name), the Kafka Secrets but no Redis one,
      no instance id, a PDB that lets its one replica go, and the alerts that read it
      only when it runs. The session key ring (OB_SESSION_KEYS) from one Secret's key in
      every stage worker and in nothing else (--session-keys: that key, or none). Writes
      the built-in kinds to --builtin (for kubernetes-validate) and the PrometheusRule's
      rule groups to --rules (for promtool).
  check_manifests.py compose CONFIG.yaml [--profile-metrics] [--session-keys RING|unset]
      `docker-compose config` output: the workers, the lifecycle process and the lag
      exporter (the workers' Kafka settings, no Redis), their dependencies and settings
      (the session key ring passed through from the environment to the five stage
      workers only, never a fixed one), the topics job (waiting for its brokers itself, with
      their default replication factor unless one is given; nothing waiting for the
      local broker), and the Prometheus scraping them all.
  check_manifests.py dockerfile Dockerfile .dockerignore
      The Dockerfile without a Docker engine: stages, user, binaries, build context.

Prints one line per finding; exits 1 when there is any.
"""
import argparse
import fnmatch
import os
import re
import sys

import yaml

KINDS = ["bucket", "cur", "iam", "connect", "verify"]
TOPIC = {"bucket": "requests", "cur": "cur", "iam": "iam", "connect": "connect", "verify": "verify"}
# The lifecycle process: a Deployment of its own that consumes no topic (no group, no KEDA).
LIFECYCLE = "lifecycle"
LIFECYCLE_ALERTS = ["OnboardLifecycleNoLeader", "OnboardWatcherFailing"]
# The lag exporter: a Deployment of its own (one replica) reading every group from the
# brokers; no topic consumed, no Redis, no AWS. The alerts that read its series.
LAG_EXPORTER = "lag-exporter"
EXPORTER_ALERTS = ["OnboardConsumerLagGrowing", "OnboardConsumerLagOld", "OnboardConsumerFrozen",
                   "OnboardConsumerGroupWithoutMembers", "OnboardLagExporterDown",
                   "OnboardLagExporterPollsFailing", "OnboardLagExporterStale"]
# Its own settings, and what it must not be given: Redis's secrets, the lifecycle's settings.
LAG_SETTINGS = ["OB_LAG_INTERVAL", "OB_LAG_CLUSTER_NAME"]
LIFECYCLE_SETTINGS = ["OB_WATCHER_INTERVAL", "OB_WATCHER_MAX_PER_INTERVAL", "OB_VERIFY_INTERVAL",
                      "OB_VERIFY_REPAIR", "OB_VERIFY_MAX_PER_ROUND", "OB_LIFECYCLE_LEASE_TTL"]
REDIS_SECRETS = ["OB_REDIS_PASSWORD", "OB_REDIS_SENTINEL_PASSWORD"]
BINARIES = ["onboard-bucket", "onboard-cur", "onboard-iam", "onboard-connect", "onboard-verify",
            "onboard-lifecycle", "onboard-lag-exporter", "onboardctl", "awssim"]
METRICS_PORT = 9464
# The recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
SELECTOR_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/instance"]
RECOMMENDED = SELECTOR_LABELS + ["app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                                 "app.kubernetes.io/part-of"]
COMPONENT = "app.kubernetes.io/component"
CHART_LABEL = "helm.sh/chart"
DRAIN_SECONDS = 20
# What the lifecycle process does on SIGTERM before it releases its lease: flush its producer.
FLUSH_SECONDS = 10
SECRETISH = re.compile(r"(PASSWORD|SECRET|TOKEN|PRIVATE|_KEY$|^AWS_SECRET_ACCESS_KEY$|SESSION)", re.I)
BUILTIN_GROUPS = {"v1", "apps/v1", "policy/v1", "batch/v1", "networking.k8s.io/v1", "autoscaling/v2",
                  "rbac.authorization.k8s.io/v1"}
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
             ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

problems = []


def fail(msg):
    problems.append(msg)
    print("FAIL " + msg)


def labels_match(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        val = labels.get(e["key"])
        op = e["operator"]
        if op == "In" and val not in e.get("values", []):
            return False
        if op == "NotIn" and val in e.get("values", []):
            return False
        if op == "Exists" and val is None:
            return False
        if op == "DoesNotExist" and val is not None:
            return False
    return True


def check_chart(args):
    docs = [d for d in yaml.safe_load_all(open(args.render)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        if d["apiVersion"] not in BUILTIN_GROUPS and (d["apiVersion"], d["kind"]) not in CRD_KINDS:
            fail(f"{d['kind']} {d['apiVersion']}: neither a built-in kind nor a custom resource the check knows")
    builtin = [d for d in docs if d["apiVersion"] in BUILTIN_GROUPS]
    with open(args.builtin, "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)

    # The workers' workloads: Deployments, or StatefulSets (workload: StatefulSet).
    deployments = {d["metadata"]["name"]: d
                   for d in by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])}
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secret_refs = set()
    session_refs = {}  # stage worker -> (Secret, key) of its OB_SESSION_KEYS, or None
    want = sorted(args.workers.split(",")) if args.workers else sorted(KINDS)
    lc_jobs = set(filter(None, (args.lifecycle_jobs or "").split(",")))
    if args.lifecycle_replicas:
        want = sorted(want + [LIFECYCLE])
    # The lag exporter: --lag-exporter on or off (not given: not checked).
    lx_checked = args.lag_exporter is not None
    if args.lag_exporter == "on":
        want = sorted(want + [LAG_EXPORTER])
    unchecked = ({LIFECYCLE} if args.lifecycle_replicas is None else set()) | \
        (set() if lx_checked else {LAG_EXPORTER})
    got = sorted(d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component", "?")
                 for d in deployments.values())
    if got != want and sorted(set(got) - unchecked) != sorted(set(want) - unchecked):
        fail(f"Deployments for {got}, expected one each for {want}")
    if len(got) != len(set(got)):
        fail(f"Deployments for {got}: a component twice")
    for name, dep in deployments.items():
        where = f"{dep['kind']} {name}"
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        kind = pod["metadata"]["labels"].get("app.kubernetes.io/component")
        if kind not in KINDS and kind not in (LIFECYCLE, LAG_EXPORTER):
            fail(f"{where}: component label {kind!r} is neither a worker kind nor {LIFECYCLE} "
                 f"nor {LAG_EXPORTER}")
            continue
        lc = kind == LIFECYCLE
        lx = kind == LAG_EXPORTER
        if not labels_match(dep["spec"]["selector"], pod["metadata"]["labels"]):
            fail(f"{where}: selector does not match its pod labels")
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
            fail(f"{where}: pod securityContext must set runAsNonRoot and a runAsUser")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if lc:
            if grace <= FLUSH_SECONDS:
                fail(f"{where}: terminationGracePeriodSeconds {grace} is not longer than its "
                     f"{FLUSH_SECONDS} s flush before it releases the lease")
        elif lx:
            # It exits at once on SIGTERM: any grace period will do, but none.
            if grace < 1:
                fail(f"{where}: terminationGracePeriodSeconds {grace}: the exporter gets no SIGTERM first")
        elif grace <= DRAIN_SECONDS:
            fail(f"{where}: terminationGracePeriodSeconds {grace} is not longer than the {DRAIN_SECONDS} s drain")
        names = [x["name"] for x in spec["containers"]]
        if names[:1] != [kind] or sorted(names[1:]) != sorted(args.extra_containers):
            fail(f"{where}: containers {names}, expected [{kind!r}] then {args.extra_containers}")
        c = spec["containers"][0]
        if c.get("command") != [f"onboard-{kind}"]:
            fail(f"{where}: command {c.get('command')} is not [onboard-{kind}]")
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            fail(f"{where}: capabilities do not drop ALL")
        if (sc.get("capabilities") or {}).get("add"):
            fail(f"{where}: capabilities are added")
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if ports.get("metrics") != METRICS_PORT:
            fail(f"{where}: no container port 'metrics' = {METRICS_PORT}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") not in ("metrics", METRICS_PORT):
                fail(f"{where}: {probe} is not GET {path} on the metrics port")
        if "startupProbe" in c and (c["startupProbe"].get("httpGet") or {}).get("path") != "/healthz":
            fail(f"{where}: startupProbe is not GET /healthz")
        env = {}
        for e in c.get("env") or []:
            env[e["name"]] = e
            if "value" in e and SECRETISH.search(e["name"]):
                fail(f"{where}: {e['name']} is given inline; secrets come from a Secret")
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret_refs.add((ref["name"], ref["key"]))
        cm_env = {}
        for ef in c.get("envFrom") or []:
            cm = (ef.get("configMapRef") or {}).get("name")
            if cm not in configmaps:
                fail(f"{where}: envFrom names ConfigMap {cm!r}, which the chart does not render")
            else:
                cm_env.update(configmaps[cm].get("data") or {})
        if "OB_BILLING_SECRET" in env and kind != "connect":
            fail(f"{where}: only the connect worker needs the Billing Engine secret")
        if "OB_SESSION_KEYS" in env:
            ref = (env["OB_SESSION_KEYS"].get("valueFrom") or {}).get("secretKeyRef")
            if kind not in KINDS:
                fail(f"{where}: OB_SESSION_KEYS is given to the {kind}, which seals and opens no session")
            elif not ref:
                fail(f"{where}: OB_SESSION_KEYS does not come from a Secret")
        if kind in KINDS:
            ref = ((env.get("OB_SESSION_KEYS") or {}).get("valueFrom") or {}).get("secretKeyRef")
            session_refs[kind] = (ref["name"], ref["key"]) if ref else None
        for k in LAG_SETTINGS:
            if not lx and k in env:
                fail(f"{where}: {k} is the lag exporter's setting")
        if str(cm_env.get("OB_METRICS_PORT")) != str(METRICS_PORT):
            fail(f"{where}: OB_METRICS_PORT is {cm_env.get('OB_METRICS_PORT')!r}, not {METRICS_PORT}")
        if cm_env.get("OB_TOPIC_PREFIX") != args.prefix:
            fail(f"{where}: OB_TOPIC_PREFIX is {cm_env.get('OB_TOPIC_PREFIX')!r}, not {args.prefix!r}")
        for k in cm_env:
            if SECRETISH.search(k):
                fail(f"ConfigMap: {k} looks like a secret; secrets come from a Secret")
        mounts = {m["mountPath"] for m in c.get("volumeMounts") or []}
        if "/tmp" not in mounts:
            fail(f"{where}: no writable /tmp with a read-only root filesystem")
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            if m["name"] not in vols:
                fail(f"{where}: volumeMount {m['name']} has no volume")
        for key in ("OB_KAFKA_SSL_CA_LOCATION", "OB_KAFKA_SSL_CERTIFICATE_LOCATION", "OB_KAFKA_SSL_KEY_LOCATION",
                    "OB_REDIS_TLS_CA_FILE", "OB_REDIS_TLS_CERT_FILE", "OB_REDIS_TLS_KEY_FILE"):
            if lx and key.startswith("OB_REDIS_"):
                continue  # it opens no Redis connection: the Redis files are not mounted
            path = cm_env.get(key)
            if not path:
                continue
            mount = next((m for m in c.get("volumeMounts") or [] if path.startswith(m["mountPath"] + "/")), None)
            if not mount:
                fail(f"{where}: {key}={path} is not under a mounted volume")
                continue
            items = ((vols[mount["name"]].get("secret") or {}).get("items")) or []
            rel = path[len(mount["mountPath"]) + 1:]
            if items and rel not in [i["path"] for i in items]:
                fail(f"{where}: {key}={path}: the Secret volume does not project {rel}")
        if lc:
            # One replica works under the lease, the others stand by: a fixed count, always
            # a Deployment (no group membership to keep), its jobs' settings given.
            if dep["kind"] != "Deployment":
                fail(f"{where}: the lifecycle process is a Deployment, not a {dep['kind']}")
            if args.lifecycle_replicas and dep["spec"].get("replicas") != args.lifecycle_replicas:
                fail(f"{where}: replicas {dep['spec'].get('replicas')!r}, not {args.lifecycle_replicas}")
            for job, key in (("watcher", "OB_WATCHER_INTERVAL"), ("verify", "OB_VERIFY_INTERVAL")):
                val = str((env.get(key) or {}).get("value", cm_env.get(key, "")))
                on = not re.fullmatch(r"0+(ms|s|m|h)?", val)
                if key not in env and key not in cm_env:
                    fail(f"{where}: {key} is not set")
                elif args.lifecycle_replicas is not None and on != (job in lc_jobs):
                    fail(f"{where}: {key}={val!r}, but the {job} is {'on' if job in lc_jobs else 'off'} in the values")
                elif on and not re.fullmatch(r"[0-9]+(ms|s|m|h)?", val):
                    fail(f"{where}: {key}={val!r} is not a duration the process reads")
                if job == "watcher" and on and not (cm_env.get("OB_LIFECYCLE_REGION")
                                                    or (env.get("OB_LIFECYCLE_REGION") or {}).get("value")):
                    fail(f"{where}: the watcher is on without OB_LIFECYCLE_REGION (it would not start)")
            if "OB_LIFECYCLE_LEASE_TTL" not in env and "OB_LIFECYCLE_LEASE_TTL" not in cm_env:
                fail(f"{where}: OB_LIFECYCLE_LEASE_TTL is not set")
        if lx:
            # One replica of a fixed count (two would report every series twice), always a
            # Deployment; its own settings; the Kafka settings but nothing of Redis.
            if dep["kind"] != "Deployment":
                fail(f"{where}: the lag exporter is a Deployment, not a {dep['kind']}")
            if args.lag_exporter_replicas is not None and dep["spec"].get("replicas") != args.lag_exporter_replicas:
                fail(f"{where}: replicas {dep['spec'].get('replicas')!r}, not {args.lag_exporter_replicas}")
            elif (dep["spec"].get("replicas") or 0) > 1:
                fail(f"{where}: {dep['spec']['replicas']} replicas would report every series twice")
            for key, want_val in (("OB_LAG_INTERVAL", args.lag_interval), ("OB_LAG_CLUSTER_NAME", args.lag_cluster_name)):
                val = (env.get(key) or {}).get("value")
                if val is None:
                    fail(f"{where}: {key} is not set")
                elif want_val is not None and str(val) != str(want_val):
                    fail(f"{where}: {key}={val!r}, not {want_val!r} as in the values")
            ival = str((env.get("OB_LAG_INTERVAL") or {}).get("value", ""))
            if ival and (not re.fullmatch(r"[0-9]+(ms|s|m|h)?", ival) or
                         not 1 <= duration_seconds(ival if re.search(r"[a-z]$", ival) else ival + "ms") <= 3600):
                fail(f"{where}: OB_LAG_INTERVAL={ival!r} is not a duration of 1s to 1h the exporter reads")
            for k in LIFECYCLE_SETTINGS + REDIS_SECRETS:
                if k in env:
                    fail(f"{where}: {k} is given to the lag exporter, which has no use for it")
            if any(m["name"] == "redis-tls" for m in c.get("volumeMounts") or []) or "redis-tls" in vols:
                fail(f"{where}: the Redis TLS Secret is mounted in the lag exporter, which uses no Redis")
            for k in ("OB_KAFKA_BOOTSTRAP_SERVERS", "OB_KAFKA_SECURITY_PROTOCOL"):
                if not cm_env.get(k):
                    fail(f"{where}: {k} is not set")
        if dep["kind"] == "StatefulSet":
            # Each pod its own static member: the instance id is the pod's name.
            ref = ((env.get("OB_INSTANCE_ID") or {}).get("valueFrom") or {}).get("fieldRef") or {}
            if ref.get("fieldPath") != "metadata.name":
                fail(f"{where}: OB_INSTANCE_ID is not the pod's name")
            if dep["spec"].get("podManagementPolicy") != "Parallel":
                fail(f"{where}: podManagementPolicy is not Parallel (replicas would start one by one)")
        elif "OB_INSTANCE_ID" in env or "OB_INSTANCE_ID" in cm_env:
            fail(f"{where}: a Deployment's pods cannot share an instance id")
        if args.all:
            if kind == "iam" and not cm_env.get("OB_BILLING_PRINCIPAL"):
                fail(f"{where}: OB_BILLING_PRINCIPAL is not set for the iam worker")
            for need in ("OB_KAFKA_SASL_USERNAME", "OB_KAFKA_SASL_PASSWORD") + (() if lx else ("OB_REDIS_PASSWORD",)):
                if need not in env or "valueFrom" not in env[need]:
                    fail(f"{where}: {need} does not come from a Secret")
            if kind == "connect" and "OB_BILLING_SECRET" not in env:
                fail(f"{where}: OB_BILLING_SECRET does not come from a Secret")
            if cm_env.get("OB_KAFKA_SECURITY_PROTOCOL") != "sasl_ssl":
                fail(f"{where}: security protocol is {cm_env.get('OB_KAFKA_SECURITY_PROTOCOL')!r}, not sasl_ssl")
            for key in ("OB_KAFKA_SSL_CA_LOCATION", "OB_KAFKA_SSL_CERTIFICATE_LOCATION", "OB_KAFKA_SSL_KEY_LOCATION"):
                if not cm_env.get(key):
                    fail(f"{where}: {key} is not set with mutual TLS on")

    check_session_keys(args, session_refs)
    check_lag_exporter(args, by_kind, deployments)
    check_labels(args, docs)
    check_network_policy(args, by_kind, configmaps)
    if args.overlays_values:
        check_overlays(args, docs)

    # One PDB per Deployment; the lifecycle's keeps one replica when it has more; the lag
    # exporter's lets its one replica go (a minAvailable would block every drain).
    pdbs = by_kind.get("PodDisruptionBudget", [])
    for name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in pdbs if labels_match(p["spec"]["selector"], labels)]
        if len(mine) != 1:
            fail(f"Deployment {name}: {len(mine)} PodDisruptionBudgets select it, expected 1")
        elif labels.get("app.kubernetes.io/component") == LIFECYCLE and dep["spec"].get("replicas", 1) > 1:
            if mine[0]["spec"].get("minAvailable") != 1:
                fail(f"Deployment {name}: its PodDisruptionBudget is not minAvailable: 1")
        elif labels.get("app.kubernetes.io/component") == LAG_EXPORTER:
            if mine[0]["spec"].get("maxUnavailable") != 1 or "minAvailable" in mine[0]["spec"]:
                fail(f"Deployment {name}: its PodDisruptionBudget is not maxUnavailable: 1")

    # The ServiceAccount the pods use exists.
    sas = {d["metadata"]["name"]: d for d in by_kind.get("ServiceAccount", [])}
    for name, dep in deployments.items():
        sa = dep["spec"]["template"]["spec"].get("serviceAccountName")
        if sa not in sas:
            fail(f"Deployment {name}: ServiceAccount {sa!r} is not rendered")

    # KEDA, when on: each worker scaled on its own group and topic.
    if by_kind.get("ScaledObject") or args.all:
        check_keda(args, by_kind, deployments, secret_refs)

    if args.all:
        for sa in sas.values():
            if not (sa["metadata"].get("annotations") or {}).get("eks.amazonaws.com/role-arn"):
                fail(f"ServiceAccount {sa['metadata']['name']}: no eks.amazonaws.com/role-arn annotation")
        # Every worker has a metrics Service, and the ServiceMonitor selects them all.
        svcs = by_kind.get("Service", [])
        sms = by_kind.get("ServiceMonitor", [])
        if len(sms) != 1:
            fail(f"expected one ServiceMonitor, got {len(sms)}")
        for name, dep in deployments.items():
            pod_labels = dep["spec"]["template"]["metadata"]["labels"]
            mine = [s for s in svcs if labels_match({"matchLabels": s["spec"]["selector"]}, pod_labels)]
            if len(mine) != 1:
                fail(f"Deployment {name}: {len(mine)} Services select its pods, expected 1")
                continue
            svc = mine[0]
            port_names = {p.get("name") for p in svc["spec"]["ports"]}
            for sm in sms:
                if not labels_match(sm["spec"]["selector"], svc["metadata"].get("labels") or {}):
                    fail(f"ServiceMonitor {sm['metadata']['name']} does not select Service {svc['metadata']['name']}")
                for ep in sm["spec"]["endpoints"]:
                    if ep.get("port") not in port_names:
                        fail(f"ServiceMonitor endpoint port {ep.get('port')!r} is not a port of {svc['metadata']['name']}")
        for sm in sms:
            for ep in sm["spec"]["endpoints"]:
                if not any(r.get("sourceLabels") == ["__meta_kubernetes_service_label_app_kubernetes_io_component"]
                           and r.get("targetLabel") == "worker" for r in ep.get("relabelings") or []):
                    fail(f"ServiceMonitor {sm['metadata']['name']}: no `worker` label from the component "
                         f"(the alerts' tests and the dashboards use worker=\"{LAG_EXPORTER}\")")
        if not by_kind.get("PrometheusRule"):
            fail("no PrometheusRule rendered")
        print("secrets referenced: " + ", ".join(f"{n}/{k}" for n, k in sorted(secret_refs)))

    if args.rules and by_kind.get("PrometheusRule"):
        groups = []
        for pr in by_kind.get("PrometheusRule", []):
            groups.extend(pr["spec"]["groups"])
        with open(args.rules, "w") as f:
            yaml.safe_dump({"groups": groups}, f, sort_keys=False)
        alerts = [r.get("alert") for g in groups for r in g["rules"] if r.get("alert")]
        # The lifecycle's alerts where the values ask for them (it has work, they are on),
        # and no lag alert on it: it has no consumer group.
        if args.lifecycle_replicas is not None:
            want_lc = set(filter(None, (args.lifecycle_alerts or "").split(",")))
            for a in LIFECYCLE_ALERTS:
                if (a in alerts) != (a in want_lc):
                    fail(f"PrometheusRule: {a} is {'' if a in alerts else 'not '}rendered, "
                         f"but the values {'ask' if a in want_lc else 'do not ask'} for it")
        # The alerts reading the lag exporter's series where the values ask for them (it
        # runs, they are on), none without it; the replicas alert watches its Deployment.
        if lx_checked:
            want_lx = set(filter(None, (args.lag_alerts or "").split(",")))
            for a in EXPORTER_ALERTS:
                if (a in alerts) != (a in want_lx):
                    fail(f"PrometheusRule: {a} is {'' if a in alerts else 'not '}rendered, "
                         f"but the values {'ask' if a in want_lx else 'do not ask'} for it")
        lx_deps = [n for n, d in deployments.items()
                   if d["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == LAG_EXPORTER]
        for g in groups:
            for r in g["rules"]:
                if r.get("alert", "").startswith("OnboardConsumerLag") and LIFECYCLE in r.get("expr", ""):
                    fail(f"PrometheusRule: {r['alert']} selects the lifecycle process, which consumes nothing")
                if r.get("alert") == "OnboardReplicasUnavailable":
                    for n in lx_deps:
                        if re.escape(n) not in r.get("expr", "") and n not in r.get("expr", ""):
                            fail(f"PrometheusRule: OnboardReplicasUnavailable does not watch Deployment {n}")
                    if not lx_deps and LAG_EXPORTER in r.get("expr", ""):
                        fail("PrometheusRule: OnboardReplicasUnavailable watches a lag exporter that is not rendered")
        print(f"rules: {len(groups)} group(s), alerts {', '.join(alerts)}")

    counts = {}
    for d in docs:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    print(f"rendered {len(docs)} manifests: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def check_session_keys(args, session_refs):
    """The session key ring: a stage seals for the next one and opens what the previous one
    sealed, so every stage worker takes it from the same Secret's key, or none does (then
    each stage assumes the role itself); --session-keys says which."""
    if args.session_keys is not None:
        want = None if args.session_keys == "off" else tuple(args.session_keys.split("/", 1))
        for kind, ref in sorted(session_refs.items()):
            if ref != want:
                fail(f"{kind}: OB_SESSION_KEYS from {'/'.join(ref) if ref else 'nothing'}, but the "
                     f"values give {args.session_keys if want else 'none'}")
    elif len(set(session_refs.values())) > 1:
        fail("the stage workers do not share one session key ring: "
             + ", ".join(f"{k} {'/'.join(r) if r else 'none'}" for k, r in sorted(session_refs.items())))
    given = [k for k in KINDS if session_refs.get(k)]
    if given:
        ref = session_refs[given[0]]
        print(f"session keys: {', '.join(given)} from Secret {ref[0]}, key {ref[1]}")
    else:
        print("session keys: none (each stage assumes the role itself)")


def check_lag_exporter(args, by_kind, deployments):
    """The lag exporter's objects: a Deployment, its PDB and, when Services are rendered,
    its metrics Service; none of them when it is off."""
    def mine(kind):
        return [d for d in by_kind.get(kind, [])
                if (d["metadata"].get("labels") or {}).get(COMPONENT) == LAG_EXPORTER]
    deps = [d for d in deployments.values()
            if d["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == LAG_EXPORTER]
    if args.lag_exporter == "off":
        left = [f"{d['kind']} {d['metadata']['name']}" for k in ("PodDisruptionBudget", "Service", "ScaledObject")
                for d in mine(k)] + [f"{d['kind']} {d['metadata']['name']}" for d in deps]
        if left:
            fail(f"lagExporter.enabled is false, but rendered: {', '.join(left)}")
        else:
            print("lag exporter: off; no Deployment, PDB or Service of it rendered")
        return
    if not deps:
        return  # none rendered: check_chart said whether one was expected
    dep = deps[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    if by_kind.get("Service"):
        svcs = [s for s in by_kind["Service"]
                if labels_match({"matchLabels": s["spec"].get("selector") or {}},
                                dep["spec"]["template"]["metadata"]["labels"])]
        if len(svcs) != 1:
            fail(f"Deployment {dep['metadata']['name']}: {len(svcs)} Services select the lag exporter, expected 1")
        elif (svcs[0]["metadata"].get("labels") or {}).get("onboard.io/metrics") != "true" or \
                "metrics" not in {p.get("name") for p in svcs[0]["spec"]["ports"]}:
            fail(f"Service {svcs[0]['metadata']['name']}: not the lag exporter's metrics Service")
    if mine("ScaledObject"):
        fail("a ScaledObject scales the lag exporter, which consumes no topic")
    env = {e["name"]: e.get("value") for e in c.get("env") or []}
    n = dep["spec"].get("replicas")
    print(f"lag exporter: {dep['kind']} {dep['metadata']['name']}, {n} replica{'' if n == 1 else 's'}, "
          f"command {c.get('command')}, OB_LAG_INTERVAL={env.get('OB_LAG_INTERVAL')}, "
          f"OB_LAG_CLUSTER_NAME={env.get('OB_LAG_CLUSTER_NAME')}, no Redis secret or instance id; "
          f"{len(mine('PodDisruptionBudget'))} PDB, {len(mine('Service'))} Service")


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def check_labels(args, docs):
    """The recommended labels on every object and pod, and selectors that never change."""
    release = {}
    for d in docs:
        where = f"{d['kind']} {d['metadata']['name']}"
        labels = d["metadata"].get("labels") or {}
        for k in RECOMMENDED + [CHART_LABEL]:
            if not labels.get(k):
                fail(f"{where}: no {k} label")
        if args.app_version and labels.get("app.kubernetes.io/version") != args.app_version:
            fail(f"{where}: app.kubernetes.io/version is {labels.get('app.kubernetes.io/version')!r}, "
                 f"not the appVersion {args.app_version!r}")
        for k in SELECTOR_LABELS:
            release.setdefault(k, set()).add(labels.get(k))
    for k, vals in release.items():
        if len(vals) > 1:
            fail(f"objects disagree on {k}: {sorted(map(str, vals))}")
    selectors = []
    for d in workloads(docs):
        where = f"{d['kind']} {d['metadata']['name']}"
        pod = d["spec"]["template"]["metadata"].get("labels") or {}
        for k in RECOMMENDED + [COMPONENT]:
            if not pod.get(k):
                fail(f"{where}: its pods have no {k} label")
        if args.app_version and pod.get("app.kubernetes.io/version") != args.app_version:
            fail(f"{where}: its pods' app.kubernetes.io/version is not {args.app_version!r}")
        if d["metadata"].get("labels", {}).get(COMPONENT) != pod.get(COMPONENT):
            fail(f"{where}: its component label differs from its pods'")
        if CHART_LABEL in pod:
            fail(f"{where}: {CHART_LABEL} on the pods rolls them on a chart release alone")
        selectors.append((where, d["spec"]["selector"]))
    for d in docs:
        where = f"{d['kind']} {d['metadata']['name']}"
        if d["kind"] == "PodDisruptionBudget":
            selectors.append((where, d["spec"]["selector"]))
        elif d["kind"] == "Service":
            selectors.append((where, {"matchLabels": d["spec"].get("selector") or {}}))
    for where, sel in selectors:
        keys = set(sel.get("matchLabels") or {})
        if sel.get("matchExpressions") or not keys or not keys <= set(SELECTOR_LABELS + [COMPONENT]):
            fail(f"{where}: selector {sel} is not app.kubernetes.io/name, instance and component only")
        elif keys != set(SELECTOR_LABELS + [COMPONENT]):
            fail(f"{where}: selector {sorted(keys)} does not name the component")
    n_pods = len(workloads(docs))
    print(f"labels: recommended labels on {len(docs)} objects and {n_pods} pod templates; "
          f"{len(selectors)} selectors on name, instance and component")


def url_port(url):
    m = re.match(r"^(https?)://(\[[^]]*\]|[^/:]*)(?::([0-9]+))?", url or "")
    if not m:
        return None
    return int(m.group(3)) if m.group(3) else (443 if m.group(1) == "https" else 80)


def check_network_policy(args, by_kind, configmaps):
    """One policy over every pod of the release: the metrics port in; DNS, Kafka, Redis,
    HTTPS and the configured endpoints out."""
    nps = by_kind.get("NetworkPolicy", [])
    if args.network_policy == "off":
        if nps:
            fail(f"{len(nps)} NetworkPolicies rendered with networkPolicy.enabled false")
        return
    if args.network_policy is None and not nps:
        return
    if len(nps) != 1:
        fail(f"expected one NetworkPolicy, got {len(nps)}")
        return
    np = nps[0]
    where = f"NetworkPolicy {np['metadata']['name']}"
    spec = np["spec"]
    sel = spec.get("podSelector") or {}
    if sel.get("matchExpressions") or set(sel.get("matchLabels") or {}) != set(SELECTOR_LABELS):
        fail(f"{where}: podSelector {sel} is not the release's name and instance (a component "
             f"added later would be left out)")
    for d in by_kind.get("Deployment", []) + by_kind.get("StatefulSet", []):
        if not labels_match(sel, d["spec"]["template"]["metadata"].get("labels") or {}):
            fail(f"{where}: does not select the pods of {d['kind']} {d['metadata']['name']}")
    if sorted(spec.get("policyTypes") or []) != ["Egress", "Ingress"]:
        fail(f"{where}: policyTypes {spec.get('policyTypes')} are not Ingress and Egress")

    def allows(rules, port, proto="TCP"):
        for r in rules:
            ports = r.get("ports")
            if not ports:
                return True
            for p in ports:
                if p.get("protocol", "TCP") == proto and (p.get("port") is None or p["port"] == port or
                                                          p.get("endPort", -1) >= port >= p["port"]):
                    return True
        return False

    ingress = spec.get("ingress") or []
    if not allows(ingress, METRICS_PORT):
        fail(f"{where}: does not let in the metrics port {METRICS_PORT}")
    for r in ingress:
        if not r.get("ports"):
            fail(f"{where}: an ingress rule lets in every port")
    egress = spec.get("egress") or []
    for r in egress:
        if not r.get("ports") and not r.get("to"):
            fail(f"{where}: an egress rule lets out everything")
    cm = {}
    for c in configmaps.values():
        cm.update(c.get("data") or {})
    want = [(53, "UDP", "DNS"), (53, "TCP", "DNS"), (443, "TCP", "HTTPS")]
    for b in (cm.get("OB_KAFKA_BOOTSTRAP_SERVERS") or "").split(","):
        if b.strip():
            want.append((int(b.rsplit(":", 1)[1]), "TCP", f"Kafka {b.strip()}"))
    want.append((int(cm.get("OB_REDIS_PORT", 6379)), "TCP", "Redis"))
    for h in filter(None, (cm.get("OB_REDIS_SENTINELS") or "").split(",")):
        want.append((int(h.rsplit(":", 1)[1]), "TCP", f"Redis Sentinel {h}"))
    for key in ("AWS_ENDPOINT_URL", "OB_BILLING_URL"):
        if cm.get(key):
            want.append((url_port(cm[key]), "TCP", f"{key} {cm[key]}"))
    for port, proto, what in want:
        if not allows(egress, port, proto):
            fail(f"{where}: does not let out {proto} {port} ({what})")
    print(f"network policy: in {METRICS_PORT}/TCP; out " +
          ", ".join(sorted({f"{p}/{pr}" for p, pr, _ in want}, key=lambda x: (int(x.split('/')[0]), x))))


def check_overlays(args, docs):
    """What the values file given adds is where it belongs."""
    v = yaml.safe_load(open(args.overlays_values)) or {}
    common_l, common_a = v.get("commonLabels") or {}, v.get("commonAnnotations") or {}
    pod_l, pod_a = v.get("podLabels") or {}, v.get("podAnnotations") or {}
    for d in docs:
        where = f"{d['kind']} {d['metadata']['name']}"
        labels, annotations = d["metadata"].get("labels") or {}, d["metadata"].get("annotations") or {}
        for k, val in common_l.items():
            if labels.get(k) != val:
                fail(f"{where}: commonLabels {k}={val!r} missing (got {labels.get(k)!r})")
        for k, val in common_a.items():
            if annotations.get(k) != val:
                fail(f"{where}: commonAnnotations {k}={val!r} missing (got {annotations.get(k)!r})")
    img = v.get("image") or {}
    want_image = f"{img['registry'].rstrip('/')}/{img.get('repository', 'onboard')}" + (
        f"@{img['digest']}" if img.get("digest") else f":{img['tag']}") if img.get("registry") else None
    env_want = {e["name"]: e for e in v.get("extraEnv") or []}
    for d in workloads(docs):
        where = f"{d['kind']} {d['metadata']['name']}"
        meta = d["spec"]["template"]["metadata"]
        spec = d["spec"]["template"]["spec"]
        for k, val in {**common_l, **pod_l}.items():
            if (meta.get("labels") or {}).get(k) != val:
                fail(f"{where}: pod label {k}={val!r} missing")
        for k, val in pod_a.items():
            if (meta.get("annotations") or {}).get(k) != val:
                fail(f"{where}: podAnnotations {k}={val!r} missing")
        if "checksum/config" not in (meta.get("annotations") or {}):
            fail(f"{where}: the pods lost checksum/config")
        c = spec["containers"][0]
        env = {e["name"]: e for e in c.get("env") or []}
        for name, e in env_want.items():
            if env.get(name) != e:
                fail(f"{where}: extraEnv {name} is {env.get(name)!r}, not {e!r}")
        if want_image and c.get("image") != want_image:
            fail(f"{where}: image {c.get('image')!r}, not {want_image!r}")
        mounts = c.get("volumeMounts") or []
        for m in v.get("extraVolumeMounts") or []:
            if m not in mounts:
                fail(f"{where}: extraVolumeMounts {m} not on the worker's container")
        vols = spec.get("volumes") or []
        for vol in v.get("extraVolumes") or []:
            if vol not in vols:
                fail(f"{where}: extraVolumes {vol} not in the pod")
        for x in v.get("extraContainers") or []:
            if x not in spec["containers"][1:]:
                fail(f"{where}: extraContainers {x.get('name')} not in the pod as given")
        if (v.get("imagePullSecrets") or None) != (spec.get("imagePullSecrets") or None):
            fail(f"{where}: imagePullSecrets {spec.get('imagePullSecrets')}, not {v.get('imagePullSecrets')}")
    print(f"overlays: {len(common_l)} common labels and {len(common_a)} annotations on {len(docs)} objects; "
          f"pod labels, annotations, {len(env_want)} env, {len(v.get('extraVolumes') or [])} volume(s), "
          f"{len(v.get('extraContainers') or [])} container(s), pull secrets and {want_image} "
          f"in {len(workloads(docs))} pod templates")


def check_keda(args, by_kind, deployments, secret_refs):
    # KEDA: one ScaledObject per Deployment, on its own group and topic.
    sos = by_kind.get("ScaledObject", [])
    tas = {d["metadata"]["name"] for d in by_kind.get("TriggerAuthentication", [])}
    targets = {}
    for so in sos:
        ref = so["spec"]["scaleTargetRef"]
        tname = ref["name"]
        targets[tname] = so
        if tname not in deployments or ref.get("kind", "Deployment") != deployments[tname]["kind"]:
            fail(f"ScaledObject {so['metadata']['name']}: target {ref.get('kind')} {tname} is not rendered")
            continue
        kind = deployments[tname]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        if kind not in KINDS:
            fail(f"ScaledObject {so['metadata']['name']}: scales {tname}, which consumes no topic")
            continue
        triggers = so["spec"]["triggers"]
        if [t["type"] for t in triggers].count("kafka") != 1:
            fail(f"ScaledObject {so['metadata']['name']}: not exactly one kafka trigger")
        for t in triggers:
            md = t.get("metadata") or {}
            if t["type"] == "prometheus":
                # The backlog: this worker's series only, summed over its replicas.
                q = md.get("query", "")
                if not md.get("serverAddress") or not re.fullmatch(r"sum\(onboard_backlog_messages\{.+\}\)", q):
                    fail(f"ScaledObject {so['metadata']['name']}: prometheus trigger {md!r} does not "
                         f"sum onboard_backlog_messages from a server")
                elif args.all and f'job="{tname}"' not in q:
                    fail(f"ScaledObject {so['metadata']['name']}: backlog query {q!r} does not select "
                         f"job=\"{tname}\" (the worker's Service, as the ServiceMonitor labels it)")
                if not str(md.get("threshold", "")).isdigit() or int(md["threshold"]) < 1:
                    fail(f"ScaledObject {so['metadata']['name']}: backlog threshold {md.get('threshold')!r}")
                continue
            if t["type"] != "kafka":
                fail(f"ScaledObject {so['metadata']['name']}: trigger {t['type']} is neither kafka nor prometheus")
                continue
            if md.get("consumerGroup") != args.prefix + kind:
                fail(f"ScaledObject {so['metadata']['name']}: consumerGroup {md.get('consumerGroup')!r} "
                     f"is not {args.prefix + kind!r}")
            if md.get("topic") != args.prefix + TOPIC[kind]:
                fail(f"ScaledObject {so['metadata']['name']}: topic {md.get('topic')!r} "
                     f"is not {args.prefix + TOPIC[kind]!r}")
            auth = (t.get("authenticationRef") or {}).get("name")
            if auth and auth not in tas:
                fail(f"ScaledObject {so['metadata']['name']}: authenticationRef {auth!r} is not rendered")
            if md.get("sasl") and not auth:
                fail(f"ScaledObject {so['metadata']['name']}: SASL without a TriggerAuthentication")
            if args.all and not auth:
                fail(f"ScaledObject {so['metadata']['name']}: no TriggerAuthentication with SASL and TLS on")
    for name, dep in deployments.items():
        if dep["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") not in KINDS:
            if "replicas" not in dep["spec"]:
                fail(f"Deployment {name}: no replicas set, and no ScaledObject owns its count")
            continue
        if name not in targets:
            fail(f"Deployment {name}: no ScaledObject scales it")
        elif "replicas" in dep["spec"]:
            fail(f"Deployment {name}: sets replicas although KEDA owns the count")
    for ta in by_kind.get("TriggerAuthentication", []):
        for r in ta["spec"].get("secretTargetRef") or []:
            secret_refs.add((r["name"], r["key"]))


def duration_seconds(s):
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(us|ms|s|m|h)", str(s)):
        total += float(num) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check_compose(args):
    cfg = yaml.safe_load(open(args.config))
    services = cfg.get("services") or {}
    for need in ("kafka", "redis", "awssim", "topics", *KINDS, LIFECYCLE, LAG_EXPORTER):
        if need not in services:
            fail(f"compose: service {need} is missing")
    if problems:
        return
    if services["kafka"]["image"] != "apache/kafka:3.9.1":
        fail(f"compose: kafka image is {services['kafka']['image']}, not apache/kafka:3.9.1")
    kenv = services["kafka"].get("environment") or {}
    if "broker" not in str(kenv.get("KAFKA_PROCESS_ROLES")) or "controller" not in str(kenv.get("KAFKA_PROCESS_ROLES")):
        fail("compose: kafka does not run in KRaft mode (broker,controller)")
    rcmd = " ".join(services["redis"].get("command") or [])
    if "--appendonly yes" not in rcmd or "--requirepass" not in rcmd:
        fail("compose: redis runs without AOF or without a password")
    image = services["bucket"].get("image")
    rings = set()
    for kind in (*KINDS, LIFECYCLE):
        s = services[kind]
        where = f"compose: {kind}"
        if s.get("image") != image or s.get("image") != services["awssim"].get("image"):
            fail(f"{where}: not the one image of the fleet")
        cmd = s.get("command")
        if cmd != [f"onboard-{kind}"]:
            fail(f"{where}: command {cmd} is not [onboard-{kind}]")
        dep = s.get("depends_on") or {}
        if (dep.get("topics") or {}).get("condition") != "service_completed_successfully":
            fail(f"{where}: does not wait for the topics job to complete")
        if (dep.get("redis") or {}).get("condition") != "service_healthy":
            fail(f"{where}: does not wait for a healthy redis")
        env = s.get("environment") or {}
        if str(env.get("OB_METRICS_PORT")) != str(METRICS_PORT):
            fail(f"{where}: OB_METRICS_PORT is not {METRICS_PORT}")
        for k in ("OB_KAFKA_BOOTSTRAP_SERVERS", "OB_REDIS_HOST", "OB_REDIS_PASSWORD", "OB_TOPIC_PREFIX"):
            if not env.get(k):
                fail(f"{where}: {k} is not set")
        if env.get("OB_REDIS_PASSWORD") != (services["redis"].get("environment") or {}).get("REDISCLI_AUTH"):
            fail(f"{where}: OB_REDIS_PASSWORD differs from the redis service's password")
        if kind == "iam" and not env.get("OB_BILLING_PRINCIPAL"):
            fail(f"{where}: OB_BILLING_PRINCIPAL is not set")
        # The session key ring: from the shell or .env only (a key in this public file
        # would be no key), the same to every stage worker, to nothing else.
        if kind in KINDS and "OB_SESSION_KEYS" not in env:
            fail(f"{where}: OB_SESSION_KEYS is not passed through")
        elif kind in KINDS:
            rings.add(env["OB_SESSION_KEYS"])
            if args.session_keys is not None and \
                    env["OB_SESSION_KEYS"] != (None if args.session_keys == "unset" else args.session_keys):
                fail(f"{where}: OB_SESSION_KEYS is not what the environment gives "
                     f"({'unset' if args.session_keys == 'unset' else 'a key ring'}): a value of the file's own?")
        elif "OB_SESSION_KEYS" in env:
            fail(f"{where}: OB_SESSION_KEYS is given to the {kind}, which seals and opens no session")
        for k, v in env.items():
            if v == "":
                fail(f"{where}: {k} is set to an empty string (librdkafka refuses empty settings)")
        if kind == LIFECYCLE:
            # Its jobs shown, off by default; on SIGTERM it flushes, then releases the lease.
            for k in ("OB_WATCHER_INTERVAL", "OB_VERIFY_INTERVAL"):
                if k not in env:
                    fail(f"{where}: {k} is not given")
                elif env[k] is not None and not re.fullmatch(r"[0-9]+(ms|s|m|h)?", str(env[k])):
                    fail(f"{where}: {k}={env[k]!r} is not a duration the process reads")
            if duration_seconds(s.get("stop_grace_period", "10s")) <= FLUSH_SECONDS:
                fail(f"{where}: stop_grace_period is not longer than its {FLUSH_SECONDS} s flush")
        elif duration_seconds(s.get("stop_grace_period", "10s")) <= DRAIN_SECONDS:
            fail(f"{where}: stop_grace_period is not longer than the {DRAIN_SECONDS} s drain")
        if "healthcheck" not in s:
            fail(f"{where}: no healthcheck")
    if len(rings) > 1:
        fail("compose: the stage workers do not all get the same OB_SESSION_KEYS")
    check_compose_lag_exporter(services, image)
    for name in ("kafka", "redis", "awssim"):
        if "healthcheck" not in services[name]:
            fail(f"compose: {name} has no healthcheck")
    tcmd = " ".join(services["topics"].get("entrypoint") or []) + " " + " ".join(services["topics"].get("command") or [])
    if "create-topics.sh" not in tcmd:
        fail("compose: the topics job does not run deploy/create-topics.sh")
    # Pointed at another cluster, nothing may wait for the local broker: the topics job
    # waits for the brokers it is given itself, and the workers wait for the job.
    for name, svc in services.items():
        if "kafka" in (svc.get("depends_on") or {}):
            fail(f"compose: {name} depends on the local kafka, which another cluster makes unneeded")
    tenv = services["topics"].get("environment") or {}
    if not str(tenv.get("OB_TOPICS_WAIT") or "").isdigit():
        fail("compose: the topics job does not say how long to wait for the brokers (OB_TOPICS_WAIT)")
    if tenv.get("OB_TOPIC_REPLICATION_FACTOR") is not None:
        fail(f"compose: the topics job forces replication factor {tenv['OB_TOPIC_REPLICATION_FACTOR']!r} "
             f"(unset, another cluster's default.replication.factor applies)")
    if args.profile_metrics:
        if "prometheus" not in services:
            fail("compose: the metrics profile has no prometheus service")
        else:
            check_compose_scrape(services)
    print(f"compose: {len(services)} services: {', '.join(sorted(services))}")


def check_compose_lag_exporter(services, image):
    """The lag exporter: the fleet's image, the workers' Kafka settings and nothing of
    Redis or AWS, waiting for the topics job only, its own settings, a health check."""
    s = services[LAG_EXPORTER]
    where = f"compose: {LAG_EXPORTER}"
    if s.get("image") != image:
        fail(f"{where}: not the one image of the fleet")
    if s.get("command") != [f"onboard-{LAG_EXPORTER}"]:
        fail(f"{where}: command {s.get('command')} is not [onboard-{LAG_EXPORTER}]")
    dep = s.get("depends_on") or {}
    if (dep.get("topics") or {}).get("condition") != "service_completed_successfully":
        fail(f"{where}: does not wait for the topics job to complete")
    for other in ("redis", "awssim"):
        if other in dep:
            fail(f"{where}: depends on {other}, which it does not use")
    env = s.get("environment") or {}
    wenv = services["bucket"].get("environment") or {}
    if str(env.get("OB_METRICS_PORT")) != str(METRICS_PORT):
        fail(f"{where}: OB_METRICS_PORT is not {METRICS_PORT}")
    if env.get("OB_TOPIC_PREFIX") != wenv.get("OB_TOPIC_PREFIX"):
        fail(f"{where}: OB_TOPIC_PREFIX {env.get('OB_TOPIC_PREFIX')!r} is not the workers' "
             f"{wenv.get('OB_TOPIC_PREFIX')!r}")
    kafka_keys = sorted({k for k in {**env, **wenv} if k.startswith("OB_KAFKA_")})
    for k in kafka_keys:
        if k not in env:
            fail(f"{where}: {k} is not passed through as to the workers")
        elif k not in wenv or env[k] != wenv[k]:
            fail(f"{where}: {k} is {env.get(k)!r}, not the workers' {wenv.get(k)!r}")
    if not env.get("OB_KAFKA_BOOTSTRAP_SERVERS"):
        fail(f"{where}: OB_KAFKA_BOOTSTRAP_SERVERS is not set")
    for k in env:
        if k.startswith("OB_REDIS_") or k.startswith("AWS_") or k in LIFECYCLE_SETTINGS + ["OB_SESSION_KEYS"]:
            fail(f"{where}: {k} is given to the lag exporter, which has no use for it")
        if env[k] == "":
            fail(f"{where}: {k} is set to an empty string (librdkafka refuses empty settings)")
    ival = env.get("OB_LAG_INTERVAL")
    if ival is None or not re.fullmatch(r"[0-9]+(ms|s|m|h)?", str(ival)):
        fail(f"{where}: OB_LAG_INTERVAL={ival!r} is not a duration the exporter reads")
    if not env.get("OB_LAG_CLUSTER_NAME"):
        fail(f"{where}: OB_LAG_CLUSTER_NAME is not set")
    kmounts = [v for v in (services["bucket"].get("volumes") or []) if "kafka-tls" in str(v)]
    for v in kmounts:
        if v not in (s.get("volumes") or []):
            fail(f"{where}: the workers' Kafka TLS files ({v}) are not mounted")
    if s.get("read_only") is not True or "ALL" not in (s.get("cap_drop") or []):
        fail(f"{where}: not read-only without capabilities like the workers")
    if "healthcheck" not in s:
        fail(f"{where}: no healthcheck")
    elif "/readyz" not in " ".join(map(str, s["healthcheck"].get("test") or [])):
        fail(f"{where}: its healthcheck does not ask /readyz")


def check_compose_scrape(services):
    """The metrics profile's Prometheus finds every worker, the lifecycle process and the
    lag exporter."""
    conf = None
    for v in services["prometheus"].get("volumes") or []:
        src, target = (v.get("source"), v.get("target")) if isinstance(v, dict) else (v.split(":") + [""])[:2]
        if target == "/etc/prometheus/prometheus.yml":
            conf = src
    if not conf or not os.path.isfile(conf):
        fail(f"compose: prometheus: its prometheus.yml ({conf}) is not a file of the repository")
        return
    names = set()
    for sc in (yaml.safe_load(open(conf)) or {}).get("scrape_configs") or []:
        for sd in sc.get("dns_sd_configs") or []:
            if sd.get("port") == METRICS_PORT:
                names.update(sd.get("names") or [])
        for st in sc.get("static_configs") or []:
            names.update(t.rsplit(":", 1)[0] for t in st.get("targets") or [] if t.endswith(f":{METRICS_PORT}"))
    missing = [k for k in (*KINDS, LIFECYCLE, LAG_EXPORTER) if k not in names]
    if missing:
        fail(f"compose: prometheus does not scrape {', '.join(missing)} on :{METRICS_PORT}")


def dockerignored(path, patterns):
    """Whether .dockerignore excludes PATH (the last matching pattern decides)."""
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        parts = path.split("/")
        hit = any(fnmatch.fnmatch("/".join(parts[:i]), p) or
                  fnmatch.fnmatch("/".join(parts[:i]), p.replace("**/", ""))
                  for i in range(1, len(parts) + 1))
        if hit:
            excluded = not neg
    return excluded


def check_dockerfile(args):
    text = open(args.dockerfile).read()
    # Join continuation lines, drop comments.
    lines = []
    cur = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") and not cur:
            continue
        if raw.rstrip().endswith("\\"):
            cur += raw.rstrip()[:-1] + " "
            continue
        cur += raw
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    ignore = [l.strip() for l in open(args.dockerignore) if l.strip() and not l.startswith("#")]
    args_default = {}
    stages = []
    for l in lines:
        instr, _, rest = l.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args_default[k.strip()] = v.strip()
        elif instr == "FROM":
            ref = re.sub(r"\$\{(\w+)\}", lambda m: args_default.get(m.group(1), ""), rest.split()[0])
            name = rest.split()[-1] if " AS " in rest.upper() else ""
            stages.append({"image": ref, "name": name, "lines": []})
        elif stages:
            stages[-1]["lines"].append((instr, rest))
    if len(stages) < 2:
        fail("Dockerfile: not multi-stage")
        return
    if stages[0]["image"] not in ("debian:13", "debian:trixie"):
        fail(f"Dockerfile: builder is {stages[0]['image']}, not debian:13")
    final = stages[-1]
    if final["image"] not in ("debian:13-slim", "debian:trixie-slim"):
        fail(f"Dockerfile: runtime is {final['image']}, not debian:13-slim")
    fl = final["lines"]
    users = [r for i, r in fl if i == "USER"]
    if not users:
        fail("Dockerfile: the runtime stage has no USER")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit() or int(uid) == 0:
            fail(f"Dockerfile: USER {users[-1]} is not a numeric non-root uid (Kubernetes runAsNonRoot needs one)")
    if any(i == "ENTRYPOINT" for i, _ in fl):
        fail("Dockerfile: the runtime image sets an ENTRYPOINT; the command chooses the program")
    for i, r in fl:
        if i == "CMD" and not r.startswith("["):
            fail("Dockerfile: CMD in shell form (the program would not be PID 1)")
    runtime_runs = " ".join(r for i, r in fl if i == "RUN")
    for dev in ("-dev ", "build-essential", "cmake"):
        if dev in runtime_runs + " ":
            fail(f"Dockerfile: the runtime stage installs {dev.strip()}")
    for lib in ("librdkafka1", "libcurl4t64", "libssl3t64", "libjansson4", "libhiredis1.1.0", "libjemalloc2",
                "ca-certificates"):
        if lib not in runtime_runs:
            fail(f"Dockerfile: the runtime stage does not install {lib}")
    builder_runs = " ".join(r for s in stages[:-1] for i, r in s["lines"] if i == "RUN")
    for b in BINARIES:
        if not re.search(rf"/{re.escape(b)}\b", builder_runs + " " + " ".join(r for i, r in fl)):
            fail(f"Dockerfile: {b} is not installed into the image")
    if "Release" not in builder_runs:
        fail("Dockerfile: the build is not CMAKE_BUILD_TYPE=Release")
    # The build context: every COPY source exists and is not excluded by .dockerignore.
    copied = []
    root = os.path.dirname(os.path.abspath(args.dockerfile))
    for s in stages:
        for i, r in s["lines"]:
            if i != "COPY" or "--from=" in r:
                continue
            parts = [p for p in r.split() if not p.startswith("--")]
            for src in parts[:-1]:
                src = src.rstrip("/")
                copied.append(src)
                if not os.path.exists(os.path.join(root, src)):
                    fail(f"Dockerfile: COPY {src}: no such path in the repository")
                elif dockerignored(src, ignore):
                    fail(f"Dockerfile: COPY {src}: excluded by .dockerignore")
    for must in ("build", ".git"):
        if not dockerignored(must, ignore):
            fail(f".dockerignore: {must} is not excluded")
    print("dockerfile: stages " + " -> ".join(s["image"] for s in stages) + "; context: " + " ".join(copied))
    if args.copied:
        with open(args.copied, "w") as f:
            f.write("\n".join(copied) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("chart")
    c.add_argument("render")
    c.add_argument("--prefix", default="onboard.")
    c.add_argument("--workers", help="the enabled workers, comma-separated (default: all five)")
    c.add_argument("--lifecycle-replicas", type=int,
                   help="the lifecycle process's replicas, 0 when disabled (default: not checked)")
    c.add_argument("--lifecycle-jobs", default="", help="its jobs on: watcher, verify (comma-separated)")
    c.add_argument("--lifecycle-alerts", default="",
                   help="its alerts the values ask for (comma-separated alert names)")
    c.add_argument("--lag-exporter", choices=["on", "off"],
                   help="lagExporter.enabled in the values (default: not checked)")
    c.add_argument("--lag-exporter-replicas", type=int, help="its replicas in the values")
    c.add_argument("--lag-interval", help="lagExporter.interval: OB_LAG_INTERVAL")
    c.add_argument("--lag-cluster-name", help="lagExporter.clusterName: OB_LAG_CLUSTER_NAME")
    c.add_argument("--lag-alerts", default="",
                   help="the alerts reading the exporter the values ask for (comma-separated alert names)")
    c.add_argument("--all", action="store_true")
    c.add_argument("--app-version", help="the chart's appVersion: every object's app.kubernetes.io/version")
    c.add_argument("--network-policy", choices=["on", "off"],
                   help="networkPolicy.enabled in the values (default: checked when rendered)")
    c.add_argument("--session-keys",
                   help="sessionKeys in the values: SECRET/KEY, or off (default: only checked to be "
                        "the same in every stage worker)")
    c.add_argument("--overlays", dest="overlays_values",
                   help="a values file of overlays (commonLabels, extraEnv, ...) to find in the render")
    c.add_argument("--builtin", required=True)
    c.add_argument("--rules")
    c.set_defaults(fn=check_chart)
    c = sub.add_parser("compose")
    c.add_argument("config")
    c.add_argument("--profile-metrics", action="store_true")
    c.add_argument("--session-keys",
                   help="OB_SESSION_KEYS in the environment of `docker-compose config`, or unset "
                        "(default: not checked beyond the same value for every stage worker)")
    c.set_defaults(fn=check_compose)
    c = sub.add_parser("dockerfile")
    c.add_argument("dockerfile")
    c.add_argument("dockerignore")
    c.add_argument("--copied", help="write the COPY sources here, one a line")
    c.set_defaults(fn=check_dockerfile)
    args = ap.parse_args()
    if args.cmd == "chart":
        args.extra_containers = []
        if args.overlays_values:
            v = yaml.safe_load(open(args.overlays_values)) or {}
            args.extra_containers = [x["name"] for x in v.get("extraContainers") or []]
    args.fn(args)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
