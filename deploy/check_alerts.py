#!/usr/bin/env python3
"""Checks of the chart's alerting rules that promtool does not make, for scripts/check-deploy.sh.

  check_alerts.py [--runbook docs/RUNBOOK.md] RULES.yml|RENDER.yaml...

Each file is a rendered chart (its PrometheusRule objects are read) or a Prometheus rule
file ({groups: [...]}). Every alerting rule of the chart's own groups must have:

  - a `for` that is a Prometheus duration;
  - labels.severity (non-empty);
  - annotations.summary and annotations.description (non-empty), whose {{ ... }}
    templates survived Helm (each names $labels, $value or $externalLabels, and the
    braces balance: a template Helm ate or left half would not);
  - annotations.runbook_url ending in RUNBOOK.md#ANCHOR, where ANCHOR is the alert's name
    in lower case and a heading of the runbook (GitHub's anchors: lower case, spaces to
    hyphens, other punctuation dropped, a repeated heading suffixed -1, -2...).

The links inside the runbook to its own sections (](#anchor)) must resolve too. The group
the chart renders from metrics.prometheusRule.additionalRules (named *.additional) is the
user's and is not checked. Before the files, the checker is run on a rule set with one
fault of each kind, which it must refuse.

Prints one line per finding and a last summary line; exits 1 when there is any finding.
"""
import argparse
import os
import re
import sys

import yaml

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
TEMPLATE_VARS = re.compile(r"\$(labels|value|externalLabels)\b")
USER_GROUP_SUFFIX = ".additional"


def github_anchors(markdown):
    """The anchors GitHub gives the headings of a Markdown text (fenced code left out)."""
    anchors, seen, fence = [], {}, None
    for line in markdown.splitlines():
        m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if m:
            if fence is None:
                fence = m.group(1)[0] * len(m.group(1))
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is not None:
            continue
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = m.group(1)
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
        text = re.sub(r"<[^>]+>", "", text)  # inline HTML
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.append(slug if n == 0 else f"{slug}-{n}")
    return anchors


def rule_groups(path):
    """(group name, rules) of every rule group in a render or a rule file."""
    out = []
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "PrometheusRule":
            groups = (doc.get("spec") or {}).get("groups") or []
        elif "groups" in doc:
            groups = doc["groups"] or []
        else:
            continue
        for g in groups:
            out.append((g.get("name", "?"), g.get("rules") or []))
    return out


def check_text(where, what, text, problems):
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: no annotations.{what}")
        return
    if text.count("{{") != text.count("}}"):
        problems.append(f"{where}: annotations.{what} has unbalanced {{{{ }}}}: {text!r}")
        return
    for body in TEMPLATE.findall(text):
        if not TEMPLATE_VARS.search(body):
            problems.append(f"{where}: annotations.{what} has a template naming neither $labels "
                            f"nor $value: {{{{{body}}}}}")


def check_rules(groups, anchors, problems):
    """Checks the alerting rules of groups; returns how many were checked."""
    n = 0
    for gname, rules in groups:
        if gname.endswith(USER_GROUP_SUFFIX):
            continue
        for i, r in enumerate(rules):
            name = r.get("alert")
            if not name:
                continue  # a recording rule
            n += 1
            where = f"group {gname}, rule {i} ({name})"
            d = r.get("for")
            if d is None or not DURATION.match(str(d)):
                problems.append(f"{where}: no `for`, or not a duration: {d!r}")
            sev = (r.get("labels") or {}).get("severity")
            if not isinstance(sev, str) or not sev.strip():
                problems.append(f"{where}: no labels.severity")
            ann = r.get("annotations") or {}
            check_text(where, "summary", ann.get("summary"), problems)
            check_text(where, "description", ann.get("description"), problems)
            url = ann.get("runbook_url")
            if not isinstance(url, str) or "#" not in url:
                problems.append(f"{where}: no annotations.runbook_url with a #section: {url!r}")
                continue
            base, anchor = url.rsplit("#", 1)
            if not base.endswith("RUNBOOK.md"):
                problems.append(f"{where}: runbook_url does not point at RUNBOOK.md: {url}")
            if anchor != name.lower():
                problems.append(f"{where}: runbook_url's section #{anchor} is not the alert's "
                                f"(#{name.lower()})")
            if anchor not in anchors:
                problems.append(f"{where}: runbook_url's section #{anchor} is no heading of the runbook")
    return n


def self_test():
    """The checker must refuse one fault of each kind."""
    anchors = github_anchors("# Runbook\n\n```sh\n# not a heading\n```\n\n## GoodAlert\n\n## Other: one, `two`\n")
    assert anchors == ["runbook", "goodalert", "other-one-two"], anchors
    good = {"alert": "GoodAlert", "expr": "up == 0", "for": "5m", "labels": {"severity": "warning"},
            "annotations": {"summary": "s {{ $labels.job }}", "description": "d {{ $value | humanize }}",
                            "runbook_url": "https://example.com/docs/RUNBOOK.md#goodalert"}}
    faults = [
        ("for", {"for": None}),
        ("for", {"for": "five minutes"}),
        ("severity", {"labels": {}}),
        ("summary", {"annotations": {**good["annotations"], "summary": ""}}),
        ("description", {"annotations": {**good["annotations"], "description": "{{ humanize }}"}}),
        ("description", {"annotations": {**good["annotations"], "description": "{{ $value "}}),
        ("runbook_url", {"annotations": {k: v for k, v in good["annotations"].items() if k != "runbook_url"}}),
        ("heading", {"alert": "MissingAlert", "annotations": {**good["annotations"],
                                                              "runbook_url": "docs/RUNBOOK.md#missingalert"}}),
        ("section", {"annotations": {**good["annotations"], "runbook_url": "docs/RUNBOOK.md#other-one-two"}}),
    ]
    probs = []
    assert check_rules([("g", [good])], set(anchors), probs) == 1 and not probs, probs
    assert check_rules([("g" + USER_GROUP_SUFFIX, [{"alert": "X", "expr": "1"}])], set(anchors), probs) == 0
    for what, change in faults:
        probs = []
        rule = {k: v for k, v in {**good, **change}.items() if v is not None}
        check_rules([("g", [rule])], set(anchors), probs)
        assert probs, f"a rule with a bad {what} passed: {rule}"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runbook", default=os.path.join(here, "..", "docs", "RUNBOOK.md"))
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    try:
        self_test()
    except AssertionError as e:
        print(f"FAIL check_alerts.py's self-test: {e}")
        return 1

    with open(args.runbook) as f:
        book = f.read()
    anchors = github_anchors(book)
    problems = []
    for a in sorted(set(re.findall(r"\]\(#([^)\s]+)\)", book))):
        if a not in anchors:
            problems.append(f"{os.path.basename(args.runbook)}: a link to #{a}, which is no heading")

    total, names, nfiles = 0, set(), 0
    for path in args.files:
        groups = rule_groups(path)
        if not groups:
            continue
        nfiles += 1
        mine = []
        for gname, rules in groups:
            if not gname.endswith(USER_GROUP_SUFFIX):
                names.update(r["alert"] for r in rules if r.get("alert"))
        n = check_rules(groups, set(anchors), mine)
        total += n
        problems.extend(f"{os.path.basename(path)}: {p}" for p in mine)
    if not nfiles:
        problems.append("no rule groups in " + ", ".join(args.files))

    for p in problems:
        print("FAIL " + p)
    if problems:
        print(f"check_alerts: {len(problems)} finding(s)")
        return 1
    print(f"alerts: {total} alerting rules ({len(names)} alerts) in {nfiles} file(s) have for, severity, "
          f"summary, description and a runbook_url whose section is in {os.path.basename(args.runbook)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
