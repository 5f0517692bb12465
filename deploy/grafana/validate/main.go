// Command validate checks Grafana dashboard JSON files against Grafana's
// published types (the grafana-foundation-sdk, generated from Grafana's own
// schemas): a strict decode (unknown fields, wrong types and missing required
// fields are errors, in panel options and Prometheus queries too), the types'
// own validation, and the conventions of this repository's dashboards: every
// query on the ${datasource} variable, an expression in every target, unique
// panel ids.
//
//	go run . ../onboard-dashboard.json [more.json ...]
//
// Exit status 1 on any error; prints the panel count of each file.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// strictErr is err, or nil for an empty cog.BuildErrors: the SDK's strict
// decoders return their (nil) error list as an error when nothing was wrong.
func strictErr(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}

// targets decodes a panel's queries again, strictly, as Prometheus queries
// (this repository's dashboards have no other): the SDK's panel decoder drops
// the ones its strict decoder accepted (the same empty error list).
func targets(p *dashboard.Panel, raw json.RawMessage) error {
	var t struct {
		Targets []json.RawMessage `json:"targets"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return err
	}
	if p.Datasource == nil || p.Datasource.Type == nil || *p.Datasource.Type != "prometheus" {
		return fmt.Errorf("the panel's datasource is not of type prometheus")
	}
	p.Targets = nil
	for i, rt := range t.Targets {
		q := &prometheus.Dataquery{}
		if err := strictErr(q.UnmarshalJSONStrict(rt)); err != nil {
			return fmt.Errorf("targets[%d]: %w", i, err)
		}
		p.Targets = append(p.Targets, q)
	}
	return nil
}

func check(path string) (panels, rows, queries int, errs []string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, []string{err.Error()}
	}
	var d dashboard.Dashboard
	if err := strictErr(d.UnmarshalJSONStrict(raw)); err != nil {
		return 0, 0, 0, []string{"strict decode: " + err.Error()}
	}
	// The SDK's PanelOrRowPanel drops a panel its strict decoder accepted (the
	// empty error list above): decode the top-level panels again, strictly, here.
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return 0, 0, 0, []string{err.Error()}
	}
	d.Panels = nil
	for i, rp := range top.Panels {
		var kind struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(rp, &kind); err != nil {
			errs = append(errs, fmt.Sprintf("panels[%d]: %v", i, err))
			continue
		}
		var pr dashboard.PanelOrRowPanel
		var err error
		if kind.Type == "row" {
			pr.RowPanel = &dashboard.RowPanel{}
			err = strictErr(pr.RowPanel.UnmarshalJSONStrict(rp))
			if err == nil {
				var inner struct {
					Panels []json.RawMessage `json:"panels"`
				}
				err = json.Unmarshal(rp, &inner)
				for j := 0; err == nil && j < len(inner.Panels) && j < len(pr.RowPanel.Panels); j++ {
					err = targets(&pr.RowPanel.Panels[j], inner.Panels[j])
				}
			}
		} else {
			pr.Panel = &dashboard.Panel{}
			err = strictErr(pr.Panel.UnmarshalJSONStrict(rp))
			if err == nil {
				err = targets(pr.Panel, rp)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("panels[%d]: %v", i, err))
			continue
		}
		d.Panels = append(d.Panels, pr)
	}
	if len(d.Panels) != len(top.Panels) || len(d.Panels) == 0 {
		errs = append(errs, fmt.Sprintf("%d of %d top-level panels decoded", len(d.Panels), len(top.Panels)))
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, "validate: "+err.Error())
	}
	if d.Uid == nil || *d.Uid == "" {
		errs = append(errs, "no uid")
	}
	// The strict decode above does not check the JSON is plain JSON of one object.
	var any map[string]json.RawMessage
	if err := json.Unmarshal(raw, &any); err != nil {
		errs = append(errs, err.Error())
	}
	ids := map[uint32]string{}
	seen := func(id *uint32, title string) {
		if id == nil {
			errs = append(errs, fmt.Sprintf("panel %q has no id", title))
			return
		}
		if other, ok := ids[*id]; ok {
			errs = append(errs, fmt.Sprintf("panel id %d used by %q and %q", *id, other, title))
		}
		ids[*id] = title
	}
	checkPanel := func(p *dashboard.Panel) {
		title := ""
		if p.Title != nil {
			title = *p.Title
		}
		panels++
		seen(p.Id, title)
		if p.Datasource == nil || p.Datasource.Uid == nil || *p.Datasource.Uid != "${datasource}" {
			errs = append(errs, fmt.Sprintf("panel %q: datasource is not ${datasource}", title))
		}
		if len(p.Targets) == 0 {
			errs = append(errs, fmt.Sprintf("panel %q: no queries", title))
		}
		for i, t := range p.Targets {
			q, ok := t.(*prometheus.Dataquery)
			if !ok {
				errs = append(errs, fmt.Sprintf("panel %q: target %d is not a Prometheus query (%T)", title, i, t))
				continue
			}
			queries++
			if q.Expr == "" {
				errs = append(errs, fmt.Sprintf("panel %q: target %d has no expr", title, i))
			}
		}
	}
	for _, pr := range d.Panels {
		switch {
		case pr.Panel != nil:
			checkPanel(pr.Panel)
		case pr.RowPanel != nil:
			rows++
			title := ""
			if pr.RowPanel.Title != nil {
				title = *pr.RowPanel.Title
			}
			id := pr.RowPanel.Id
			seen(&id, "row "+title)
			for i := range pr.RowPanel.Panels {
				checkPanel(&pr.RowPanel.Panels[i])
			}
		}
	}
	return panels, rows, queries, errs
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate DASHBOARD.json...")
		os.Exit(2)
	}
	// Panel options and queries decode into their plugins' types.
	plugins.RegisterDefaultPlugins()
	bad := false
	for _, path := range os.Args[1:] {
		panels, rows, queries, errs := check(path)
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "%s: %s\n", path, e)
		}
		if len(errs) > 0 {
			bad = true
			continue
		}
		fmt.Printf("%s: valid: %d panels in %d rows, %d queries\n", path, panels, rows, queries)
	}
	if bad {
		os.Exit(1)
	}
}
