// crdcheck validates the custom resources the Helm chart renders against the
// Go API types of their operators, since the Kubernetes JSON schemas that
// kubernetes-validate ships have no custom resource definitions:
//
//   - keda.sh/v1alpha1 ScaledObject, TriggerAuthentication (KEDA's types,
//     and KEDA's own admission checks that need no cluster: replica bounds,
//     fallback, trigger names);
//   - monitoring.coreos.com/v1 ServiceMonitor, PrometheusRule (the
//     Prometheus Operator's types).
//
// Each document is decoded strictly: an unknown field, a misspelt field or a
// value of the wrong type is an error. Kinds it does not know are skipped and
// listed. Usage: crdcheck FILE.yaml... ; exit 1 when anything is wrong.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// decodeStrict fills out from the JSON document, refusing unknown fields.
func decodeStrict(doc []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

var kafkaSASL = map[string]bool{"plaintext": true, "scram_sha256": true, "scram_sha512": true,
	"oauthbearer": true, "gssapi": true, "aws_msk_iam": true}

// checkKafkaTrigger checks the kafka scaler's metadata the way the scaler
// parses it (its parser lives in KEDA's scaler package, which brings every
// scaler's dependencies, so the rules are restated here).
func checkKafkaTrigger(md map[string]string) []string {
	var errs []string
	for _, k := range []string{"bootstrapServers", "consumerGroup", "topic"} {
		if strings.TrimSpace(md[k]) == "" {
			errs = append(errs, "kafka trigger: "+k+" is missing")
		}
	}
	for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
		if v, ok := md[k]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || (k == "lagThreshold" && n == 0) {
				errs = append(errs, fmt.Sprintf("kafka trigger: %s %q is not a valid count", k, v))
			}
		}
	}
	if v, ok := md["offsetResetPolicy"]; ok && v != "earliest" && v != "latest" {
		errs = append(errs, fmt.Sprintf("kafka trigger: offsetResetPolicy %q is not earliest or latest", v))
	}
	if v, ok := md["sasl"]; ok && !kafkaSASL[v] {
		errs = append(errs, fmt.Sprintf("kafka trigger: sasl %q is not a mode the scaler knows", v))
	}
	if v, ok := md["tls"]; ok && v != "enable" && v != "disable" {
		errs = append(errs, fmt.Sprintf("kafka trigger: tls %q is not enable or disable", v))
	}
	for _, k := range []string{"allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag"} {
		if v, ok := md[k]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				errs = append(errs, fmt.Sprintf("kafka trigger: %s %q is not a boolean", k, v))
			}
		}
	}
	for _, k := range []string{"username", "password", "ca", "cert", "key", "keyPassword"} {
		if _, ok := md[k]; ok {
			errs = append(errs, "kafka trigger: "+k+" belongs in a TriggerAuthentication, not in the metadata")
		}
	}
	return errs
}

func checkScaledObject(doc []byte) []string {
	var so kedav1alpha1.ScaledObject
	if err := decodeStrict(doc, &so); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Name == "" {
		errs = append(errs, "spec.scaleTargetRef.name is missing")
	}
	if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(&so); err != nil {
		errs = append(errs, err.Error())
	}
	if err := kedav1alpha1.CheckFallbackValid(&so); err != nil {
		errs = append(errs, err.Error())
	}
	if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
		errs = append(errs, err.Error())
	}
	for _, t := range so.Spec.Triggers {
		if t.Type == "kafka" {
			errs = append(errs, checkKafkaTrigger(t.Metadata)...)
		}
	}
	return errs
}

func checkTriggerAuthentication(doc []byte) []string {
	var ta kedav1alpha1.TriggerAuthentication
	if err := decodeStrict(doc, &ta); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	seen := map[string]bool{}
	for _, r := range ta.Spec.SecretTargetRef {
		if r.Parameter == "" || r.Name == "" || r.Key == "" {
			errs = append(errs, fmt.Sprintf("secretTargetRef %+v: parameter, name and key are required", r))
		}
		if seen[r.Parameter] {
			errs = append(errs, "secretTargetRef: parameter "+r.Parameter+" given twice")
		}
		seen[r.Parameter] = true
	}
	return errs
}

func checkServiceMonitor(doc []byte) []string {
	var sm monv1.ServiceMonitor
	if err := decodeStrict(doc, &sm); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	if len(sm.Spec.Endpoints) == 0 {
		errs = append(errs, "spec.endpoints is empty")
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Port == "" && ep.TargetPort == nil {
			errs = append(errs, fmt.Sprintf("endpoints[%d]: neither port nor targetPort", i))
		}
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 && len(sm.Spec.Selector.MatchExpressions) == 0 {
		errs = append(errs, "spec.selector selects every Service")
	}
	return errs
}

func checkPrometheusRule(doc []byte) []string {
	var pr monv1.PrometheusRule
	if err := decodeStrict(doc, &pr); err != nil {
		return []string{err.Error()}
	}
	var errs []string
	for _, g := range pr.Spec.Groups {
		if g.Name == "" {
			errs = append(errs, "a rule group has no name")
		}
		for i, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") {
				errs = append(errs, fmt.Sprintf("group %s rule %d: exactly one of alert and record", g.Name, i))
			}
			if r.Expr.String() == "" {
				errs = append(errs, fmt.Sprintf("group %s rule %d: expr is empty", g.Name, i))
			}
		}
	}
	return errs
}

var checkers = map[string]func([]byte) []string{
	"keda.sh/v1alpha1/ScaledObject":           checkScaledObject,
	"keda.sh/v1alpha1/TriggerAuthentication":  checkTriggerAuthentication,
	"monitoring.coreos.com/v1/ServiceMonitor": checkServiceMonitor,
	"monitoring.coreos.com/v1/PrometheusRule": checkPrometheusRule,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: crdcheck FILE.yaml...")
		os.Exit(2)
	}
	bad := 0
	checked := map[string]int{}
	skipped := map[string]int{}
	for _, path := range os.Args[1:] {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "crdcheck:", err)
			os.Exit(2)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(f))
		for {
			raw, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "crdcheck: %s: %v\n", path, err)
				os.Exit(2)
			}
			doc, err := yaml.YAMLToJSON(raw)
			if err != nil {
				fmt.Fprintf(os.Stderr, "crdcheck: %s: not YAML: %v\n", path, err)
				bad++
				continue
			}
			if string(bytes.TrimSpace(doc)) == "null" {
				continue
			}
			var tm typeMeta
			if err := json.Unmarshal(doc, &tm); err != nil {
				fmt.Fprintf(os.Stderr, "crdcheck: %s: %v\n", path, err)
				bad++
				continue
			}
			key := tm.APIVersion + "/" + tm.Kind
			check, ok := checkers[key]
			if !ok {
				skipped[tm.Kind]++
				continue
			}
			checked[tm.Kind]++
			for _, e := range check(doc) {
				fmt.Printf("FAIL %s %s: %s\n", tm.Kind, tm.Metadata.Name, e)
				bad++
			}
		}
		f.Close()
	}
	var parts []string
	for k, n := range checked {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	fmt.Printf("crdcheck: checked %s", strings.Join(parts, ", "))
	if len(parts) == 0 {
		fmt.Print("nothing")
	}
	fmt.Printf(" (%d not custom resources it knows)\n", sum(skipped))
	if bad > 0 {
		fmt.Printf("crdcheck: %d problem(s)\n", bad)
		os.Exit(1)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
