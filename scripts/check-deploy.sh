#!/usr/bin/env bash
# The deployment check (CTest integration.deploy): the Helm chart, the
# docker-compose stack, the Prometheus config and alerts, the topic script and
# the Dockerfile, all without a Kubernetes cluster or a Docker engine.
#
#  1. helm lint --strict, with the defaults and with every helm/onboard/ci/*-values.yaml
#     ("the defaults" here: plus image.registry, which the chart requires)
#  2. helm template with the defaults and with every ci/*-values.yaml
#     (all-values.yaml: KEDA, ServiceMonitor, PrometheusRule, Kafka TLS + SASL,
#     IRSA, ...; keda-plain-values.yaml: KEDA without SASL, one worker off, no
#     NetworkPolicy; overlays-values.yaml: commonLabels, podAnnotations, extraEnv,
#     extraVolumes and mounts, extraContainers, pull secrets, registry + digest,
#     the ServiceMonitor and PrometheusRule);
#     the defaults alone stop at render asking for image.registry; overlays given
#     with --set are accepted and land in the render; --set lagExporter.enabled=false
#     renders no lag exporter; sessionKeys given renders OB_SESSION_KEYS from that
#     Secret's key into the five stage workers and nothing else, and not given, nowhere
#  3. values that break values.schema.json are refused by helm (the schema is wired),
#     unknown keys among them
#  4. the built-in kinds of every render against the Kubernetes OpenAPI schemas,
#     strictly (unknown fields are errors), for the oldest Kubernetes the chart
#     supports (1.25) and the newest kubernetes-validate knows (1.37)
#  5. the custom resources (KEDA ScaledObject and TriggerAuthentication, Prometheus
#     Operator ServiceMonitor and PrometheusRule), which those schemas lack:
#     decoded strictly into the operators' own Go API types with KEDA's admission
#     checks that need no cluster (deploy/crdcheck, built from the Go module
#     proxy) -- their OpenAPI CRD schemas are not validated
#  6. what no schema says (deploy/check_manifests.py): the recommended labels on
#     every object and pod template, selectors on name, instance and component
#     only, the NetworkPolicy over every pod (metrics port in; DNS, Kafka, Redis,
#     HTTPS and the configured endpoints out), each overlay of
#     ci/overlays-values.yaml where it belongs; non-root, read-only root,
#     no capabilities, probes on /healthz and /readyz at 9464, grace period over
#     the 20 s drain, secrets only by reference, one PDB / ScaledObject / Service
#     per worker with the right consumer group and topic, the ServiceMonitor
#     selecting every worker, the IRSA annotation, the TLS files mounted; the
#     lifecycle process likewise, but a Deployment of fixed replicas that KEDA
#     leaves alone, a PDB keeping one replica, its jobs' settings and its alerts;
#     the lag exporter likewise, one replica, its settings, the Kafka Secrets and
#     no Redis one, no instance id, its PDB and Service, the alerts reading it;
#     the session key ring from the values' Secret in every stage worker, or none
#  7. promtool check rules on each render's PrometheusRule, deploy/check_alerts.py
#     (every alert's for, severity, summary, description and runbook section) and
#     promtool test rules (helm/onboard/ci/alerts.test.yaml: the alerts fire when
#     they should, not before)
#  8. promtool check config deploy/prometheus.yml; the Grafana dashboard: the
#     chart's and the compose stack's the same, in a ConfigMap for the sidecar,
#     decoded strictly into Grafana's types (deploy/grafana/validate)
#  9. docker-compose config -q, with and without --profile metrics, and the
#     stack's wiring (dependencies, health checks, settings, the lag exporter's
#     Kafka-only settings, what Prometheus scrapes, nothing waiting for the local
#     broker, no forced replication factor), and the session key ring passed
#     through from the environment to the five stage workers, unset and set
# 10. deploy/create-topics.sh: its client settings for SASL/TLS (offline), and,
#     when a broker is given (OB_TEST_KAFKA_BROKERS, as scripts/test.sh does),
#     creating the eight topics on it with Kafka's own TopicCommand (jars from Maven
#     Central), running it again (idempotent), then deleting them
# 11. the Dockerfile without Docker: stages, user, entrypoint, runtime packages
#     (and that its package names exist in Debian 13, asked of its package index);
#     its build context (only the COPY'd paths) builds with the Dockerfile's
#     CMake flags, and every library the binaries need comes from a package the
#     runtime stage installs
#
# helm (v3.22.0, `go install` from the Go module proxy), the crdcheck tool and a
# Python venv with kubernetes-validate are built once into ~/.cache/onboard
# (OB_CACHE_DIR). docker-compose and promtool come from Debian (scripts/deps.sh).
# Exit 0: all passed; 1: something failed (listed at the end); 77: a tool is
# missing and cannot be had here (a failure when OB_TEST_REQUIRE_SERVICES=1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
CHART=helm/onboard
HELM_VERSION=v3.22.0
# Kubernetes minor version of the client-go that helm v3.22 is built with; the
# release Makefile passes it by ldflags (otherwise helm assumes 1.20).
HELM_K8S_MINOR=37
KUBE_VERSIONS=(1.25.0 1.37.0)
KVALIDATE_VERSION=1.37.0
PYYAML_VERSION=6.0.2
KAFKA_TOOLS=$CACHE/kafka-tools-3.9.1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")
TOPIC_CLEANUP=""
cleanup() {
  if [ -n "$TOPIC_CLEANUP" ]; then eval "$TOPIC_CLEANUP" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "check-deploy: FAIL: internal error (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

say() { printf '%s\n' "$*"; }
FAILED=()
PASSED=0
ok() { PASSED=$((PASSED + 1)); say "  ok    $*"; }
bad() { FAILED+=("$*"); say "  FAIL  $*"; }
note() { say "  skip  $*"; }
section() { printf '\n== %s\n' "$*"; }

skip_all() {
  if [ "${OB_TEST_REQUIRE_SERVICES:-0}" = 1 ]; then
    say "check-deploy: FAIL: $* (OB_TEST_REQUIRE_SERVICES=1)"
    exit 1
  fi
  say "check-deploy: skipped: $*"
  exit 77
}

# run LOG CMD...: run quietly, keep the output in LOG, show its end on failure.
run() {
  local log=$1
  shift
  if "$@" >"$log" 2>&1; then return 0; fi
  sed 's/^/        /' "$log" | tail -25
  return 1
}

# ---------------------------------------------------------------- tools
section "tools"
missing=()
for t in go python3 docker-compose promtool cmake; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  skip_all "missing ${missing[*]} (scripts/deps.sh installs them)"
fi

# helm v3.22 and deploy/crdcheck declare go 1.26; a go from 1.21 on fetches
# that toolchain from the Go module proxy by itself, an older one cannot.
go_minor=$(go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -lt 21 ]; then
  skip_all "go $(go env GOVERSION 2>/dev/null) is too old to build helm $HELM_VERSION (1.21+ fetches the 1.26 it needs)"
fi

HELM_DIR=$CACHE/helm-$HELM_VERSION
HELM=$HELM_DIR/bin/helm
if [ ! -x "$HELM" ]; then
  say "  building helm $HELM_VERSION into $HELM_DIR (once; a few minutes)"
  mkdir -p "$HELM_DIR"
  if ! run "$WORK/helm-build.log" env GOBIN="$HELM_DIR/bin.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod \
      go install -trimpath -ldflags "-s -w \
        -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
        -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; then
    rm -rf "$HELM_DIR/bin.tmp"
    skip_all "could not build helm $HELM_VERSION from the Go module proxy"
  fi
  rm -rf "${HELM_DIR:?}/bin"
  mv "$HELM_DIR/bin.tmp" "$HELM_DIR/bin"
fi
export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data
say "  helm $("$HELM" version --short)"

CRD_SRC=deploy/crdcheck
CRD_HASH=$(cat "$CRD_SRC/go.mod" "$CRD_SRC/go.sum" "$CRD_SRC"/*.go | sha256sum | cut -c1-16)
CRDCHECK=$CACHE/crdcheck-$CRD_HASH/crdcheck
if [ ! -x "$CRDCHECK" ]; then
  say "  building deploy/crdcheck into $(dirname "$CRDCHECK") (once; about a minute)"
  mkdir -p "$(dirname "$CRDCHECK")"
  if ! run "$WORK/crdcheck-build.log" env CGO_ENABLED=0 go build -C "$CRD_SRC" -trimpath \
      -o "$CRDCHECK.tmp" .; then
    skip_all "could not build deploy/crdcheck (its modules come from the Go module proxy)"
  fi
  mv "$CRDCHECK.tmp" "$CRDCHECK"
fi
say "  crdcheck $(basename "$(dirname "$CRDCHECK")")"

VENV=$CACHE/venv-deploy
PY_REQS=("kubernetes-validate==$KVALIDATE_VERSION" "PyYAML==$PYYAML_VERSION")
STAMP="$VENV/.reqs-$(printf '%s\n' "${PY_REQS[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  say "  installing ${PY_REQS[*]} into $VENV"
  { [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"; } >"$WORK/venv.log" 2>&1 || true
  if ! run "$WORK/venv.log" "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQS[@]}"; then
    skip_all "could not install ${PY_REQS[*]} into the private venv"
  fi
  touch "$STAMP"
fi
PY=$VENV/bin/python
say "  kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -1)," \
  "$(docker-compose version --short 2>/dev/null || docker-compose --version)," \
  "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}')"

# ---------------------------------------------------------------- helm
# The chart has no default image registry (the image is built from this repository
# and pushed to one of yours): "the defaults" are the chart's values plus this.
REGISTRY_VALUES=$WORK/registry-values.yaml
printf 'image:\n  registry: registry.example.com/platform\n' >"$REGISTRY_VALUES"
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$CHART/Chart.yaml")

section "helm lint --strict"
VALUE_SETS=(default)
for f in "$CHART"/ci/*-values.yaml; do VALUE_SETS+=("$f"); done
for vs in "${VALUE_SETS[@]}"; do
  args=(-f "$vs")
  [ "$vs" != default ] || args=(-f "$REGISTRY_VALUES")
  if run "$WORK/lint.log" "$HELM" lint --strict "$CHART" "${args[@]}"; then
    ok "lint ($vs)"
  else
    bad "helm lint --strict ($vs)"
  fi
done

section "helm template"
NS=onboard
RENDERS=()
declare -A VALUES_OF=()
render_set() { # NAME VALUES_FILE [WHAT]
  local name=$1 file=$2 what=${3:-$2}
  if "$HELM" template onb "$CHART" --namespace "$NS" -f "$file" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
    RENDERS+=("$name")
    VALUES_OF[$name]=$file
    ok "renders with $what ($(grep -c '^kind:' "$WORK/$name.yaml") manifests)"
  else
    bad "helm template ($what)"
    sed 's/^/        /' "$WORK/$name.err"
  fi
}
render_set default "$REGISTRY_VALUES" "the defaults and image.registry"
for f in "$CHART"/ci/*-values.yaml; do render_set "$(basename "$f" -values.yaml)" "$f"; done
if [ -s "$WORK/default.yaml" ] && [ "$(grep -c '^kind: NetworkPolicy$' "$WORK/default.yaml")" = 1 ]; then
  ok "the defaults render a NetworkPolicy (validated with the built-in kinds below)"
else
  bad "the defaults do not render one NetworkPolicy"
fi
# Without image.registry the chart stops at render, saying what to give.
if "$HELM" template onb "$CHART" >/dev/null 2>"$WORK/noreg.err"; then
  bad "the chart renders without image.registry (the pods would pull onboard from Docker Hub)"
elif grep -q 'image.registry is required' "$WORK/noreg.err"; then
  ok "without image.registry: $(grep -o 'image.registry is required: [^(]*' "$WORK/noreg.err" | head -1 | sed 's/ *$//')"
else
  bad "without image.registry helm fails, but not with the chart's message: $(head -2 "$WORK/noreg.err" | tr '\n' ' ')"
fi

section "overlays given with --set are accepted"
# SET|KIND|what the render must then hold (a grep -E on that kind's documents).
GOOD_SETS=(
  "commonLabels.team=x|ConfigMap|^    team: x$"
  "commonAnnotations.example\\.com/owner=platform|ServiceAccount|^    example.com/owner: platform$"
  "networkPolicy.enabled=true|NetworkPolicy|^  policyTypes: \\[Ingress, Egress\\]$"
  "podAnnotations.example\\.com/backup=daily|Deployment|^        example.com/backup: daily$"
  "podLabels.tier=backend|Deployment|^        tier: backend$"
  "extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy:3128|Deployment|^              value: http://proxy:3128$"
  "extraVolumes[0].name=ca,extraVolumes[0].configMap.name=ca-bundle,extraVolumeMounts[0].name=ca,extraVolumeMounts[0].mountPath=/etc/ssl/certs/ca-certificates.crt,extraVolumeMounts[0].subPath=ca.crt|Deployment|^              subPath: ca.crt$"
  "extraContainers[0].name=proxy,extraContainers[0].image=envoyproxy/envoy:v1.31.0|Deployment|^ +(- )?image: envoyproxy/envoy:v1.31.0$"
  "imagePullSecrets[0].name=regcred|Deployment|^        - name: regcred$"
  "image.registry=registry.example.com:5000/team,image.digest=sha256:$(printf '%064d' 0)|Deployment|image: \"registry.example.com:5000/team/onboard@sha256:0{64}\"$"
)
for entry in "${GOOD_SETS[@]}"; do
  IFS='|' read -r set kind want <<<"$entry"
  if ! "$HELM" template onb "$CHART" --namespace "$NS" -f "$REGISTRY_VALUES" --set "$set" \
      >"$WORK/good.yaml" 2>"$WORK/good.err"; then
    bad "refused --set $set: $(head -2 "$WORK/good.err" | tr '\n' ' ')"
  elif awk -v k="kind: $kind" '/^---/ {doc = 0} $0 == k {doc = 1} doc' "$WORK/good.yaml" | grep -E -- "$want" >/dev/null; then
    ok "--set $set (in the $kind)"
  else
    bad "--set $set accepted, but no $kind holds /$want/"
  fi
done
if "$HELM" template onb "$CHART" -f "$REGISTRY_VALUES" --set networkPolicy.enabled=false >"$WORK/nonp.yaml" 2>&1 &&
    ! grep -q '^kind: NetworkPolicy' "$WORK/nonp.yaml"; then
  ok "--set networkPolicy.enabled=false renders no NetworkPolicy"
else
  bad "--set networkPolicy.enabled=false"
fi
# What a render should hold, from the values: the topic prefix, the enabled workers,
# the lifecycle process's replicas (0: off), jobs on and alerts ("-": none), the
# NetworkPolicy, the lag exporter (on/off, replicas, interval, cluster name, the
# alerts reading it), and the session key ring (SECRET/KEY, or off). Tab-separated.
facts() { # VALUES_FILE_OR_EMPTY
  "$PY" - "$CHART/values.yaml" ${1:+"$1"} <<'EOF'
import re, sys, yaml
def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a.get(k), b[k]) if k in b else a[k] for k in {**a, **b}}
    return b
v = yaml.safe_load(open(sys.argv[1]))
for f in sys.argv[2:]:
    v = merge(v, yaml.safe_load(open(f)) or {})
lc = v["lifecycle"]
jobs = [j for j in ("watcher", "verify")
        if lc["enabled"] and not re.fullmatch(r"0+(ms|s|m|h)?", str(lc[j]["interval"]))]
rule = v["metrics"]["prometheusRule"]
alerts = []
if rule["enabled"] and jobs and rule["lifecycleLeader"]["enabled"]:
    alerts.append("OnboardLifecycleNoLeader")
if rule["enabled"] and "watcher" in jobs and rule["watcherFailing"]["enabled"]:
    alerts.append("OnboardWatcherFailing")
lx = v["lagExporter"]
lx_alerts = []
if rule["enabled"] and lx["enabled"]:
    for key, names in (("lagGrowing", ["OnboardConsumerLagGrowing"]), ("lagAge", ["OnboardConsumerLagOld"]),
                       ("consumerFrozen", ["OnboardConsumerFrozen"]),
                       ("groupWithoutMembers", ["OnboardConsumerGroupWithoutMembers"]),
                       ("lagExporterHealth", ["OnboardLagExporterDown", "OnboardLagExporterPollsFailing",
                                              "OnboardLagExporterStale"])):
        if rule[key]["enabled"]:
            lx_alerts += names
def scalar(x):
    return str(int(x)) if isinstance(x, (int, float)) and x == int(x) else str(x)
sk = v["sessionKeys"]
print("\t".join(map(str, [
      v["topics"]["prefix"], ",".join(k for k in ("bucket", "cur", "iam", "connect", "verify") if v["workers"][k]["enabled"]),
      lc["replicas"] if lc["enabled"] else 0, ",".join(jobs) or "-", ",".join(alerts) or "-",
      "on" if v["networkPolicy"]["enabled"] else "off",
      "on" if lx["enabled"] else "off", lx["replicas"], scalar(lx["interval"]), lx["clusterName"],
      ",".join(lx_alerts) or "-",
      f"{sk['existingSecret']}/{sk['secretKey']}" if sk["existingSecret"] else "off"])))
EOF
}
# chart_args VALUES_FILE: the check_manifests.py chart arguments of that values file, in
# the array `extra`.
chart_args() {
  local prefix workers lc_replicas lc_jobs lc_alerts netpol lx lx_replicas lx_interval lx_cluster lx_alerts \
    session_keys
  IFS=$'\t' read -r prefix workers lc_replicas lc_jobs lc_alerts netpol lx lx_replicas lx_interval lx_cluster \
    lx_alerts session_keys <<<"$(facts "$1")"
  extra=(--prefix "$prefix" --workers "$workers"
    --lifecycle-replicas "$lc_replicas" --lifecycle-jobs "${lc_jobs#-}" --lifecycle-alerts "${lc_alerts#-}"
    --lag-exporter "$lx" --lag-exporter-replicas "$lx_replicas" --lag-interval "$lx_interval"
    --lag-cluster-name "$lx_cluster" --lag-alerts "${lx_alerts#-}"
    --app-version "$APP_VERSION" --network-policy "$netpol" --session-keys "$session_keys")
}

# The lag exporter runs by default (check_manifests.py checks it in every render below);
# turned off, nothing of it is rendered and no alert reads it (its metrics Service and
# the PrometheusRule on, to show it). The same values as a file, for facts.
NOLX_SET=lagExporter.enabled=false,metrics.service.enabled=true,metrics.prometheusRule.enabled=true
printf 'lagExporter:\n  enabled: false\nmetrics:\n  service:\n    enabled: true\n  prometheusRule:\n    enabled: true\n' \
  >"$WORK/nolx-values.yaml"
chart_args "$WORK/nolx-values.yaml"
if ! "$HELM" template onb "$CHART" --namespace "$NS" -f "$REGISTRY_VALUES" --set "$NOLX_SET" \
    >"$WORK/nolx.yaml" 2>"$WORK/nolx.err"; then
  bad "refused --set $NOLX_SET: $(head -2 "$WORK/nolx.err" | tr '\n' ' ')"
elif run "$WORK/nolx.log" "$PY" deploy/check_manifests.py chart "$WORK/nolx.yaml" --builtin "$WORK/nolx.builtin.yaml" \
    --rules "$WORK/nolx.rules.yml" "${extra[@]}" && ! grep -q 'component: lag-exporter' "$WORK/nolx.yaml"; then
  ok "--set $NOLX_SET: $(grep '^lag exporter:' "$WORK/nolx.log" | sed 's/^lag exporter: //'), no alert reading it"
else
  bad "--set $NOLX_SET still renders the lag exporter or the alerts reading it"
fi
# The session key ring: given, OB_SESSION_KEYS from that Secret's key in the five stage
# workers (Deployments or StatefulSets) and not in the lifecycle process or the lag
# exporter; not given (the defaults), nowhere. The same values as a file, for facts.
SK_SET=sessionKeys.existingSecret=onboard-session-keys,sessionKeys.secretKey=ring
printf 'sessionKeys:\n  existingSecret: onboard-session-keys\n  secretKey: ring\n' >"$WORK/sk-values.yaml"
chart_args "$WORK/sk-values.yaml"
for wl in Deployment StatefulSet; do
  if ! "$HELM" template onb "$CHART" --namespace "$NS" -f "$REGISTRY_VALUES" --set "$SK_SET,workload=$wl" \
      >"$WORK/sk.yaml" 2>"$WORK/sk.err"; then
    bad "refused --set $SK_SET: $(head -2 "$WORK/sk.err" | tr '\n' ' ')"
  elif run "$WORK/sk.log" "$PY" deploy/check_manifests.py chart "$WORK/sk.yaml" --builtin "$WORK/sk.builtin.yaml" \
      "${extra[@]}" && [ "$(grep -c '^ *- name: OB_SESSION_KEYS$' "$WORK/sk.yaml")" = 5 ]; then
    ok "--set $SK_SET (workload: $wl): $(grep '^session keys:' "$WORK/sk.log" | sed 's/^session keys: //')," \
      "not the lifecycle process or the lag exporter"
  else
    bad "--set $SK_SET (workload: $wl): OB_SESSION_KEYS is not rendered from that Secret into the five stage workers alone"
  fi
done
if [ -s "$WORK/default.yaml" ] && ! grep -q 'OB_SESSION_KEYS' "$WORK/default.yaml"; then
  ok "the defaults render no OB_SESSION_KEYS (no sessionKeys.existingSecret: each stage assumes the role itself)"
else
  bad "the defaults render OB_SESSION_KEYS without sessionKeys.existingSecret"
fi

section "values.schema.json refuses bad values"
cat >"$WORK/bad-unknown.yaml" <<'EOF'
replicaCount: 3
EOF
cat >"$WORK/bad-worker.yaml" <<'EOF'
workers:
  iam:
    replica: 3
EOF
BAD_SETS=(
  "file:$WORK/bad-unknown.yaml|an unknown top-level key"
  "file:$WORK/bad-worker.yaml|a misspelt worker setting"
  "set:logLevel=verbose|a log level the workers do not know"
  "set:kafka.sasl.enabled=true|SASL without its Secret"
  "set:kafka.sasl.mechanism=GSSAPI|a SASL mechanism the chart does not support"
  "set:kafka.tls.certKey=tls.crt|a client certificate without its key"
  "set:terminationGracePeriodSeconds=15|a grace period shorter than the drain"
  "set:securityContext.runAsNonRoot=false|a container allowed to run as root"
  "set:settings.redis\\.password=x|a secret as a plain setting"
  "set:settings.session\\.keys=k1:x|the session key ring as a plain setting"
  "set:sessionKeys.key=ring|a misspelt sessionKeys setting"
  "set:sessionKeys.existingSecret=Session_Keys|a session key ring Secret name Kubernetes refuses"
  "set:kafka.properties.sasl\\.password=x|a Kafka secret as a plain property"
  "set:billing.url=http://billing.example.com|a Billing Engine URL without TLS"
  "set:serviceAccount.roleArn=role/onboard|an IAM role that is not an ARN"
  "set:keda.maxReplicaCount=0|KEDA with no replicas"
  "set:metrics.prometheusRule.lagGrowing.window=ten|a window that is not a duration"
  "set:lifecycle.watcher.interval=5m|the organization watcher without lifecycle.region"
  "set:lifecycle.verify.interval=1d|an interval the lifecycle process cannot read"
  "set:commonLabel.team=x|a misspelt commonLabels"
  "set:networkPolicy.enable=true|a misspelt networkPolicy setting"
  "set:networkPolicy.metricsFrom[0].pods.app=x|a NetworkPolicy peer that is not one"
  "set:commonLabels.app\\.kubernetes\\.io/name=x|a commonLabel replacing the chart's own"
  "set:podLabels.team=not a label value|a pod label value Kubernetes refuses"
  "set:extraVolumeMounts[0].name=ca|a volume mount without its mountPath"
  "set:extraVolumes[0].name=tmp,extraVolumes[0].emptyDir.medium=Memory|an extra volume named as the chart's own"
  "set:extraContainers[0].name=bucket,extraContainers[0].image=x|an extra container named as a worker's"
  "set:extraEnv[0].value=x|an extra env var without a name"
  "set:image.registry=https://registry.example.com|an image registry with a scheme"
  "set:imagePullSecrets[0]=regcred|a pull secret that is not {name: ...}"
  "set:lagExporter.intervall=5s|a misspelt lagExporter setting"
  "set:lagExporter.interval=0|a lag exporter interval under 1s"
  "set:lagExporter.interval=2h|a lag exporter interval over 1h"
  "set:lagExporter.replicas=2|two lag exporters (every series reported twice)"
  "set:settings.lag\\.interval=5s|lag.interval as a plain setting (lagExporter.interval)"
  "set:extraContainers[0].name=lag-exporter,extraContainers[0].image=x|an extra container named as the lag exporter's"
)
for entry in "${BAD_SETS[@]}"; do
  spec=${entry%%|*}
  what=${entry#*|}
  case $spec in
    file:*) args=(-f "${spec#file:}") ;;
    set:*) args=(--set "${spec#set:}") ;;
  esac
  if "$HELM" template onb "$CHART" "${args[@]}" >/dev/null 2>"$WORK/bad.err"; then
    bad "helm accepted $what (${spec})"
  elif grep -q "values don't meet the specifications of the schema" "$WORK/bad.err"; then
    ok "refused: $what"
  else
    bad "helm failed on $what, but not through the schema: $(head -2 "$WORK/bad.err" | tr '\n' ' ')"
  fi
done

section "Kubernetes schemas (built-in kinds, strict)"
for name in "${RENDERS[@]}"; do
  chart_args "${VALUES_OF[$name]}"
  extra+=(--rules "$WORK/$name.rules.yml")
  # ci/all-values.yaml turns everything on: the checks then ask for all of it.
  [ "$name" = all ] && extra+=(--all)
  # ci/overlays-values.yaml: each overlay must be found where it belongs.
  [ "$name" = overlays ] && extra+=(--overlays "${VALUES_OF[$name]}")
  # Also writes the built-in kinds apart (and the rules); its verdict is shown below.
  "$PY" deploy/check_manifests.py chart "$WORK/$name.yaml" --builtin "$WORK/$name.builtin.yaml" \
    "${extra[@]}" >"$WORK/$name.policy.log" 2>&1 || true
  for kv in "${KUBE_VERSIONS[@]}"; do
    # Rendered for that version (the chart leaves out what older clusters
    # refuse, e.g. a PDB's unhealthyPodEvictionPolicy before 1.27).
    builtin=$WORK/$name.builtin.yaml
    if [ "${kv%.*}" != "1.$HELM_K8S_MINOR" ]; then
      builtin=$WORK/$name.builtin-$kv.yaml
      "$HELM" template onb "$CHART" --namespace "$NS" --kube-version "$kv" -f "${VALUES_OF[$name]}" \
        >"$WORK/$name-$kv.yaml" 2>/dev/null || true
      "$PY" deploy/check_manifests.py chart "$WORK/$name-$kv.yaml" --builtin "$builtin" \
        "${extra[@]}" >/dev/null 2>&1 || true
    fi
    if run "$WORK/kv.log" "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn -k "$kv" \
        "$builtin"; then
      n=$(grep -c '^kind:' "$builtin" || true)
      ok "$name: $n built-in manifests valid for Kubernetes ${kv%.0}"
    else
      bad "$name: Kubernetes $kv schema validation"
    fi
  done
done

section "custom resources (KEDA, Prometheus Operator types)"
for name in "${RENDERS[@]}"; do
  if ! grep -qE '^apiVersion: (keda\.sh|monitoring\.coreos\.com)/' "$WORK/$name.yaml"; then continue; fi
  if run "$WORK/crd.log" "$CRDCHECK" "$WORK/$name.yaml"; then
    ok "$name: $(tail -1 "$WORK/crd.log" | sed 's/^crdcheck: //')"
  else
    bad "$name: custom resources (crdcheck)"
  fi
done
if [ -s "$WORK/all.yaml" ]; then
  # The check must catch a misspelt field: feed it one.
  sed 's/^  pollingInterval:/  pollingIntervall:/' "$WORK/all.yaml" >"$WORK/all-broken.yaml"
  if "$CRDCHECK" "$WORK/all-broken.yaml" >"$WORK/crd-broken.log" 2>&1; then
    bad "crdcheck accepted a ScaledObject with an unknown field"
  else
    ok "crdcheck refuses a ScaledObject with an unknown field"
  fi
fi

section "what the schemas do not say (deploy/check_manifests.py)"
for name in "${RENDERS[@]}"; do
  [ -s "$WORK/$name.policy.log" ] || continue
  if grep -q '^FAIL' "$WORK/$name.policy.log" || ! grep -q '^rendered' "$WORK/$name.policy.log"; then
    bad "$name: manifest checks"
    sed 's/^/        /' "$WORK/$name.policy.log"
  else
    ok "$name: $(grep '^rendered' "$WORK/$name.policy.log")"
    grep -E '^(secrets referenced|rules|labels|network policy|overlays|lag exporter|session keys):' "$WORK/$name.policy.log" |
      sed 's/^/          /' || true
  fi
done

# ---------------------------------------------------------------- prometheus
section "promtool"
for name in "${RENDERS[@]}"; do
  [ -s "$WORK/$name.rules.yml" ] || continue
  if run "$WORK/promtool.log" promtool check rules "$WORK/$name.rules.yml"; then
    ok "$name: check rules: $(grep -o '[0-9]* rules found' "$WORK/promtool.log")"
  else
    bad "$name: promtool check rules (the PrometheusRule's rules)"
  fi
done
if run "$WORK/check-alerts.log" "$PY" deploy/check_alerts.py "$WORK"/*.rules.yml; then ok "$(tail -1 "$WORK/check-alerts.log")"; else bad "deploy/check_alerts.py (every alert's for, severity, summary, description and runbook_url section in docs/RUNBOOK.md)"; fi
if [ -s "$WORK/all.rules.yml" ]; then
  mkdir -p "$WORK/alerts"
  "$PY" - "$WORK/all.rules.yml" "$WORK/alerts/rules.yml" <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for g in d["groups"]:
    for r in g["rules"]:
        r.pop("annotations", None)  # the tests look at the labels
yaml.safe_dump(d, open(sys.argv[2], "w"), sort_keys=False)
EOF
  cp "$CHART/ci/alerts.test.yaml" "$WORK/alerts/"
  if run "$WORK/promtest.log" promtool test rules "$WORK/alerts/alerts.test.yaml"; then
    ok "test rules: helm/onboard/ci/alerts.test.yaml"
  else
    bad "promtool test rules (helm/onboard/ci/alerts.test.yaml)"
  fi
else
  bad "no rules extracted from the PrometheusRule"
fi
if run "$WORK/promconf.log" promtool check config deploy/prometheus.yml; then
  ok "check config deploy/prometheus.yml"
else
  bad "promtool check config deploy/prometheus.yml"
fi

# ---------------------------------------------------------------- dashboard
section "the Grafana dashboard"
DASH=$CHART/dashboards/onboard.json
if cmp -s "$DASH" deploy/grafana/onboard-dashboard.json; then
  ok "the chart's dashboard and the compose stack's are the same bytes"
else
  bad "helm/onboard/dashboards/onboard.json and deploy/grafana/onboard-dashboard.json differ"
fi
# The chart's ConfigMap carries it, labelled for Grafana's dashboard sidecar.
if [ -s "$WORK/default.yaml" ] && "$PY" - "$WORK/default.yaml" "$DASH" >"$WORK/dash-cm.log" 2>&1 <<'EOF'
import json, sys, yaml
want = json.load(open(sys.argv[2]))
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
        got = [json.loads(v) for v in d["data"].values()]
        sys.exit(0 if got == [want] else "the ConfigMap's dashboard is not the file")
sys.exit("no ConfigMap labelled grafana_dashboard=1")
EOF
then
  ok "the defaults render it in a ConfigMap labelled grafana_dashboard=\"1\""
else
  bad "the dashboard's ConfigMap: $(tail -1 "$WORK/dash-cm.log")"
fi
# Decoded strictly into Grafana's published types (grafana-foundation-sdk).
if command -v go >/dev/null 2>&1; then
  if (cd deploy/grafana/validate && GOFLAGS=${GOFLAGS:--mod=mod} run "$WORK/dash-validate.log" go run . "$ROOT/$DASH"); then
    ok "$(tail -1 "$WORK/dash-validate.log" | sed "s|$ROOT/||")"
  else
    bad "the dashboard does not decode into Grafana's types (deploy/grafana/validate)"
  fi
elif [ "${OB_TEST_REQUIRE_SERVICES:-0}" = 1 ]; then
  bad "go is not installed: the dashboard cannot be checked against Grafana's types"
else
  note "the dashboard against Grafana's types: go is not installed"
fi

# ---------------------------------------------------------------- compose
section "docker-compose"
# Nothing from the caller's environment or a local .env may change the result.
compose() { env -i PATH="$PATH" HOME="$WORK" docker-compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" "$@"; }
if [ -f "$ROOT/.env" ]; then note "a local .env exists; docker-compose reads it"; fi
if run "$WORK/compose.log" compose config -q; then
  ok "docker-compose config -q"
else
  bad "docker-compose config -q"
fi
profiles=0
if compose --help 2>/dev/null | grep -q -- '--profile'; then profiles=1; fi
if [ $profiles = 1 ]; then
  if run "$WORK/compose-m.log" compose --profile metrics config -q; then
    ok "docker-compose --profile metrics config -q"
  else
    bad "docker-compose --profile metrics config -q"
  fi
  compose --profile metrics config >"$WORK/compose.yaml" 2>/dev/null || true
  cflags=(--profile-metrics)
else
  note "this docker-compose has no profiles (1.28+ needed): --profile metrics not checked"
  compose config >"$WORK/compose.yaml" 2>/dev/null || true
  cflags=()
fi
if [ -s "$WORK/compose.yaml" ] && run "$WORK/compose-check.log" "$PY" deploy/check_manifests.py compose \
    "$WORK/compose.yaml" "${cflags[@]}"; then
  ok "$(tail -1 "$WORK/compose-check.log")"
else
  bad "docker-compose wiring (deploy/check_manifests.py compose)"
fi
# The session key ring comes from the environment (the shell or .env) alone: unset, it
# reaches no worker (no default in the file); set, the same to every stage worker and
# to nothing else. Without a local .env (an empty --env-file), and with a throwaway ring.
: >"$WORK/empty.env"
for sk in unset "ci:$(head -c 32 /dev/urandom | base64)"; do
  sk_env=()
  [ "$sk" = unset ] || sk_env=(OB_SESSION_KEYS="$sk")
  if env -i PATH="$PATH" HOME="$WORK" "${sk_env[@]}" docker-compose --env-file "$WORK/empty.env" \
      --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" config >"$WORK/compose-sk.yaml" 2>"$WORK/compose-sk.err" &&
      run "$WORK/compose-sk.log" "$PY" deploy/check_manifests.py compose "$WORK/compose-sk.yaml" --session-keys "$sk"; then
    if [ "$sk" = unset ]; then
      ok "OB_SESSION_KEYS unset: none in the file, so each stage assumes the role itself"
    else
      ok "OB_SESSION_KEYS set: the five stage workers get it, the lifecycle process and the lag exporter do not"
    fi
  else
    sed 's/^/        /' "$WORK/compose-sk.err" | tail -5
    bad "docker-compose with OB_SESSION_KEYS ${sk%%:*} (deploy/check_manifests.py compose --session-keys)"
  fi
done

# ---------------------------------------------------------------- topics
section "deploy/create-topics.sh"
if run "$WORK/sh-n.log" sh -n deploy/create-topics.sh; then ok "sh -n"; else bad "sh -n deploy/create-topics.sh"; fi
# Offline: a stand-in kafka-topics.sh records what the script asks for.
mkdir -p "$WORK/fakebin"
cat >"$WORK/fakebin/kafka-topics.sh" <<'EOF'
#!/bin/sh
log=$FAKE_DIR/calls
for a in "$@"; do
  case $prev in --command-config) cp "$a" "$FAKE_DIR/client.properties" ;; esac
  prev=$a
done
echo "$*" >>"$log"
exit 0
EOF
chmod +x "$WORK/fakebin/kafka-topics.sh"
mkdir -p "$WORK/fake"
if FAKE_DIR=$WORK/fake KAFKA_BIN=$WORK/fakebin OB_KAFKA_BOOTSTRAP_SERVERS=b1:9096 \
    OB_KAFKA_SECURITY_PROTOCOL=sasl_ssl OB_KAFKA_SASL_MECHANISMS=SCRAM-SHA-512 \
    OB_KAFKA_SASL_USERNAME=onboard OB_KAFKA_SASL_PASSWORD='p"w\d' \
    OB_KAFKA_SSL_CA_LOCATION=/etc/onboard/kafka-tls/ca.pem OB_TOPIC_PREFIX=x. \
    OB_TOPIC_PARTITIONS=7 sh deploy/create-topics.sh >"$WORK/fake.log" 2>&1; then
  props=$WORK/fake/client.properties
  want_jaas='sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="onboard" password="p\\"w\\\\d";'
  if grep -qxF 'security.protocol=SASL_SSL' "$props" && grep -qxF 'sasl.mechanism=SCRAM-SHA-512' "$props" &&
      grep -qxF "$want_jaas" "$props" && grep -qxF 'ssl.truststore.type=PEM' "$props" &&
      grep -qxF 'ssl.truststore.location=/etc/onboard/kafka-tls/ca.pem' "$props"; then
    ok "SASL_SSL client settings from the OB_KAFKA_* variables (quotes escaped)"
  else
    bad "create-topics.sh wrote unexpected client settings:"
    sed 's/password=.*/password=.../; s/^/        /' "$props"
  fi
  ncreate=$(grep -c -- '--create' "$WORK/fake/calls" || true)
  if [ "$ncreate" = 8 ] && grep -q -- '--topic x.requests --partitions 7' "$WORK/fake/calls" &&
      grep -q -- '--topic x.dlq --partitions 3 .*retention.ms=' "$WORK/fake/calls" &&
      ! grep -q -- '--replication-factor' "$WORK/fake/calls"; then
    ok "asks for the eight topics with their partition counts (the brokers' default replication factor)"
  else
    bad "create-topics.sh did not ask for the eight topics as expected"
    sed 's/^/        /' "$WORK/fake/calls"
  fi
else
  bad "create-topics.sh (offline run)"
  sed 's/^/        /' "$WORK/fake.log" | tail -10
fi

# Live, against the test broker when there is one.
if [ -n "${OB_TEST_KAFKA_BROKERS:-}" ] && command -v java >/dev/null && command -v mvn >/dev/null; then
  if [ ! -f "$KAFKA_TOOLS/.complete" ]; then
    mkdir -p "$KAFKA_TOOLS"
    if run "$WORK/mvn.log" mvn -q -B -Dstyle.color=never -f deploy/kafka-tools/pom.xml \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_TOOLS"; then
      touch "$KAFKA_TOOLS/.complete"
    fi
  fi
  if [ -f "$KAFKA_TOOLS/.complete" ]; then
    mkdir -p "$WORK/kbin"
    printf 'log4j.rootLogger=ERROR, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stderr.layout.ConversionPattern=%%p %%m%%n\n' \
      >"$WORK/kbin/log4j.properties"
    cat >"$WORK/kbin/kafka-topics.sh" <<EOF
#!/bin/sh
exec java -Xmx256m -Dlog4j.configuration=file:$WORK/kbin/log4j.properties -cp "$KAFKA_TOOLS/*" org.apache.kafka.tools.TopicCommand "\$@"
EOF
    chmod +x "$WORK/kbin/kafka-topics.sh"
    prefix="ckdeploy$$."
    TOPIC_CLEANUP="for t in requests cur iam connect verify connected drift dlq; do '$WORK/kbin/kafka-topics.sh' --bootstrap-server '$OB_TEST_KAFKA_BROKERS' --delete --if-exists --topic '$prefix'\$t; done"
    topics_env=(env KAFKA_BIN="$WORK/kbin" OB_KAFKA_BOOTSTRAP_SERVERS="$OB_TEST_KAFKA_BROKERS"
      OB_TOPIC_PREFIX="$prefix" OB_TOPIC_PARTITIONS=4 OB_TOPIC_CONNECTED_PARTITIONS=2
      OB_TOPIC_DLQ_PARTITIONS=1 OB_TOPIC_REPLICATION_FACTOR=1 OB_TOPICS_WAIT=60)
    if run "$WORK/topics1.log" "${topics_env[@]}" sh deploy/create-topics.sh &&
        run "$WORK/topics2.log" "${topics_env[@]}" sh deploy/create-topics.sh; then
      "$WORK/kbin/kafka-topics.sh" --bootstrap-server "$OB_TEST_KAFKA_BROKERS" --describe \
        --topic "${prefix//./\\.}.*" >"$WORK/describe.log" 2>&1 || true
      got=$(awk '/PartitionCount/ {for (i=1;i<=NF;i++) { if ($i=="Topic:") t=$(i+1); if ($i=="PartitionCount:") p=$(i+1) } print t"="p}' \
        "$WORK/describe.log" | sed "s/^$prefix//" | sort | tr '\n' ' ')
      want="connect=4 connected=2 cur=4 dlq=1 drift=2 iam=4 requests=4 verify=4 "
      if [ "$got" = "$want" ] && grep -q "${prefix}dlq.*retention.ms=2592000000" "$WORK/describe.log" &&
          grep -q 'exists (4 partitions)' "$WORK/topics2.log"; then
        ok "created the eight topics on $OB_TEST_KAFKA_BROKERS ($got), again idempotently"
      else
        bad "topics on the broker: got '$got', want '$want'"
        sed 's/^/        /' "$WORK/describe.log" | head -20
      fi
    else
      bad "create-topics.sh against $OB_TEST_KAFKA_BROKERS"
    fi
    eval "$TOPIC_CLEANUP" >/dev/null 2>&1 || true
    TOPIC_CLEANUP=""
  else
    if [ "${OB_TEST_REQUIRE_SERVICES:-0}" = 1 ]; then
      bad "could not fetch Kafka's tools jars (Maven Central)"
    else
      note "live topic creation: Kafka's tools jars could not be fetched"
    fi
  fi
elif [ "${OB_TEST_REQUIRE_SERVICES:-0}" = 1 ] && [ -n "${OB_TEST_KAFKA_BROKERS:-}" ]; then
  bad "live topic creation needs java and mvn"
else
  note "live topic creation: no broker (OB_TEST_KAFKA_BROKERS) given"
fi

# ---------------------------------------------------------------- Dockerfile
section "Dockerfile (no Docker engine: static checks and its build context built natively)"
if run "$WORK/dockerfile.log" "$PY" deploy/check_manifests.py dockerfile Dockerfile .dockerignore \
    --copied "$WORK/copied"; then
  ok "$(tail -1 "$WORK/dockerfile.log")"
  # Its apt-get packages exist in Debian 13, the image's base: asked of trixie's
  # package index through a private apt configuration (nothing is installed).
  TRIXIE_APT=$CACHE/apt-trixie
  mkdir -p "$TRIXIE_APT/lists/partial" "$TRIXIE_APT/cache/archives/partial" "$TRIXIE_APT/parts"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    >"$TRIXIE_APT/parts/trixie.sources"
  trixie_apt=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$TRIXIE_APT/parts"
    -o "Dir::State::Lists=$TRIXIE_APT/lists" -o "Dir::Cache=$TRIXIE_APT/cache"
    -o "Dir::State::Status=/dev/null" -o "APT::Sandbox::User=root" -q)
  # shellcheck disable=SC1003
  apt_pkgs=$(sed -n '/apt-get install/,/rm -rf/p' Dockerfile | tr -s ' \\' '\n' |
    grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vxE 'apt-get|install|rm|-rf|-y|&&' | sort -u | tr '\n' ' ')
  if find "$TRIXIE_APT/lists" -name '*Packages*' -mtime -1 | grep -q . ||
      apt-get "${trixie_apt[@]}" update >"$WORK/apt-trixie.log" 2>&1; then
    unknown=()
    for p in $apt_pkgs; do
      apt-cache "${trixie_apt[@]}" show --no-all-versions "$p" >/dev/null 2>&1 || unknown+=("$p")
    done
    if [ ${#unknown[@]} -eq 0 ]; then
      ok "its Debian packages exist in trixie: $apt_pkgs"
    else
      bad "Dockerfile installs packages trixie does not have: ${unknown[*]}"
    fi
  else
    bad "cannot read trixie's package index (see $WORK/apt-trixie.log)"
  fi
  # The Dockerfile's build, on exactly the paths it copies.
  mkdir -p "$WORK/ctx"
  while read -r p; do
    [ -n "$p" ] || continue
    mkdir -p "$(dirname "$WORK/ctx/$p")"
    cp -r "$ROOT/$p" "$WORK/ctx/$p"
  done <"$WORK/copied"
  cmake_flags=$(grep -o 'cmake -S \. -B [^ ]* [^&]*' Dockerfile | head -1 | sed 's/^cmake -S \. -B [^ ]* //; s/\\//g; s/ *$//')
  # shellcheck disable=SC2086
  if run "$WORK/ctx.log" cmake -S "$WORK/ctx" -B "$WORK/ctx/build" $cmake_flags &&
      run "$WORK/ctx-build.log" cmake --build "$WORK/ctx/build" -j"$(nproc)"; then
    missing_bins=()
    for b in workers/onboard-bucket workers/onboard-cur workers/onboard-iam workers/onboard-connect \
        workers/onboard-verify workers/onboard-lifecycle workers/onboard-lag-exporter \
        tools/onboardctl sim/awssim; do
      [ -x "$WORK/ctx/build/$b" ] || missing_bins+=("$b")
    done
    if [ ${#missing_bins[@]} -eq 0 ]; then
      ok "the build context builds ($cmake_flags): all nine binaries"
      # Every library a binary links directly comes from a package the runtime
      # installs: the package Debian's library naming gives its SONAME (policy
      # 8.1: libfoo.so.N in libfooN, libfoo-N.so in libfoo-N; trixie's 64-bit
      # time transition adds t64 to some; zlib is zlib1g), and libc's own
      # libraries from libc6.
      # shellcheck disable=SC1003
      runtime_pkgs=$(sed -n '/^FROM .*-slim/,$p' Dockerfile | tr -s ' \\' '\n' | grep -E '^lib|^zlib1g$|^ca-certificates$' | sort -u | tr '\n' ' ')
      libs_bad=()
      for b in workers/onboard-bucket workers/onboard-cur workers/onboard-iam workers/onboard-connect \
          workers/onboard-verify workers/onboard-lifecycle workers/onboard-lag-exporter \
        tools/onboardctl sim/awssim; do
        for so in $(readelf -d "$WORK/ctx/build/$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
          case $so in
            libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) continue ;;
            libcrypto.so.*) so=libssl.so.${so#libcrypto.so.} ;; # both in libssl3
            libhiredis_ssl.so.*) so=libhiredis.so.${so#libhiredis_ssl.so.} ;; # both in libhiredis1.1.0
          esac
          base=${so%%.so*} ver=${so#*.so.}
          case $base in *[0-9]) want=$base-$ver ;; *) want=$base$ver ;; esac
          [ "$so" = libz.so.1 ] && want=zlib1g # zlib's package predates the naming policy
          case " $runtime_pkgs " in
            *" $want "* | *" ${want}t64 "*) ;;
            *) libs_bad+=("$(basename "$b"): $so (package $want)") ;;
          esac
        done
      done
      if [ ${#libs_bad[@]} -eq 0 ]; then
        ok "every library the binaries link comes from a runtime package: $runtime_pkgs"
      else
        bad "the runtime stage lacks packages for: ${libs_bad[*]}"
      fi
    else
      bad "the build context built, but without ${missing_bins[*]}"
    fi
  else
    bad "the Dockerfile's build context does not build (the COPY lines miss something?)"
  fi
else
  bad "Dockerfile checks"
fi

# ---------------------------------------------------------------- summary
section "summary"
kinds=$(grep -h '^kind:' "$WORK/all.yaml" 2>/dev/null | sort | uniq -c | awk '{printf "%s%d %s", sep, $1, $3; sep=", "}')
say "render with everything on: $(grep -c '^kind:' "$WORK/all.yaml" 2>/dev/null || true) manifests ($kinds)"
if [ ${#FAILED[@]} -gt 0 ]; then
  say "check-deploy: ${#FAILED[@]} check(s) failed, $PASSED passed:"
  for f in "${FAILED[@]}"; do say "  - $f"; done
  exit 1
fi
say "check-deploy: all $PASSED checks passed"
