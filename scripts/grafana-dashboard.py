#!/usr/bin/env python3
"""Writes deploy/grafana/harness-dashboard.json (run from the repository root: python3 scripts/grafana-dashboard.py).
Every panel selects by the variables matrix, optimizer, model and run, and joins harness_run_info for its legend, so
series read "adam lr=0.0003" (the run's swept values) instead of run ids."""
import json, pathlib

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'matrix=~"$matrix", optimizer=~"$optimizer", model=~"$model", run=~"$run"'
# One run_info series per (matrix, run) even if two scrape targets report the same run.
INFO = f'max by (matrix, run, config) (harness_run_info{{{SEL}}})'

def labelled(expr):
    return f'({expr}) * on (matrix, run) group_left (config) {INFO}'

def target(ref, expr, legend):
    return {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend}

def panel(pid, title, x, y, targets, unit="none", log=None, description="", extra_defaults=None):
    custom = {"drawStyle": "line", "lineWidth": 1, "showPoints": "never", "spanNulls": True}
    if log:
        custom["scaleDistribution"] = {"type": "log", "log": log}
    defaults = {"unit": unit, "custom": custom}
    defaults.update(extra_defaults or {})
    return {
        "id": pid, "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": 12, "h": 8}, "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi", "sort": "desc"}},
    }

def variable(name, label, query):
    return {"name": name, "label": label, "type": "query", "datasource": DS, "query": query, "definition": query,
            "includeAll": True, "allValue": ".*", "multi": True, "current": {"text": "All", "value": "$__all"},
            "refresh": 2, "sort": 1}

unpreconditioned = f'harness_edge_ratio{{{SEL}}}'   # the sharpness probe reports edge_ratio only without a preconditioner
panels = [
    panel(1, "Training loss", 0, 0, [target("A", labelled(f'harness_train_loss{{{SEL}}}'), "{{config}}")], log=10,
          description="Loss on the step's batch before the update (log scale)."),
    panel(2, "Sharpness λ1(H) and the threshold of unpreconditioned methods", 12, 0, [
        target("A", labelled(f'harness_sharpness{{{SEL}}}'), "λ1 {{config}}"),
        target("B", labelled(f'harness_stability_threshold{{{SEL}}} and on (matrix, run) {unpreconditioned}'), "threshold {{config}}"),
    ], log=10, description="Raw λ1(H) of every run; thresholds only of methods without a preconditioner (GD, heavy ball, "
                           "Nesterov: 2/η, (2+2β)/η, …), whose threshold is on λ1(H). Log scale."),
    panel(3, "Preconditioned sharpness λ1(P^-1/2 H P^-1/2) and the threshold of preconditioned methods", 0, 8, [
        target("A", labelled(f'harness_precond_sharpness{{{SEL}}}'), "λ̃1 {{config}}"),
        target("B", labelled(f'harness_stability_threshold{{{SEL}}} unless on (matrix, run) {unpreconditioned}'), "threshold {{config}}"),
    ], log=10, description="λ1 of the preconditioned Hessian; thresholds of preconditioned and adaptive methods (Adam, "
                           "RMSProp, precond_*), whose threshold is on this quantity. Log scale."),
    panel(4, "Edge ratio (sharpness / threshold)", 12, 8, [
        target("A", labelled(f'harness_edge_ratio{{{SEL}}}'), "λ1/thr {{config}}"),
        target("B", labelled(f'harness_precond_edge_ratio{{{SEL}}}'), "λ̃1/thr {{config}}"),
    ], description="1 is the edge of stability (red line).", extra_defaults={
        "thresholds": {"mode": "absolute", "steps": [{"color": "transparent", "value": None}, {"color": "red", "value": 1}]},
    }),
    panel(5, "Learning rate η_t", 0, 16, [target("A", labelled(f'harness_learning_rate{{{SEL}}}'), "{{config}}")], log=10),
    panel(6, "Step rate", 12, 16, [target("A", labelled(f'rate(harness_steps_total{{{SEL}}}[1m])'), "{{config}}")], unit="ops",
          description="Optimizer steps per second."),
    panel(7, "Probe cost (mean seconds per measurement)", 0, 24, [target("A", labelled(
        f'rate(harness_probe_duration_seconds_sum{{{SEL}}}[5m]) / rate(harness_probe_duration_seconds_count{{{SEL}}}[5m])'),
        "{{probe}} {{config}}")], unit="s"),
    panel(8, "Run progress", 12, 24, [target("A", labelled(f'harness_run_progress{{{SEL}}}'), "{{config}}")], unit="percentunit"),
    panel(9, "Run status", 0, 32, [target("A", labelled(f'harness_run_status{{{SEL}}}'), "{{status}} {{config}}")],
          description="1 for the run's current status."),
]
for p in panels:  # the edge-ratio reference line
    if p["id"] == 4:
        p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {"mode": "line"}

def annotation(name, color, expr, title, text):
    return {"name": name, "enable": True, "iconColor": color, "datasource": DS, "expr": expr, "step": "15s",
            "titleFormat": title, "textFormat": text, "tagKeys": "matrix,optimizer,run", "useValueForTime": False}

# Regions where the query has a value: an edge ratio at or above 1 starts at the crossing; a run's first 15 s; the 15 s
# after a run's end (its harness_runs_ended_total series appears once, when it ends).
annotations = [
    {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
     "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
    annotation("At the edge (λ1 ≥ threshold)", "orange", labelled(f'harness_edge_ratio{{{SEL}}} >= 1'),
               "edge crossed", "{{config}}: λ1/threshold ≥ 1"),
    annotation("At the preconditioned edge (λ̃1 ≥ threshold)", "yellow", labelled(f'harness_precond_edge_ratio{{{SEL}}} >= 1'),
               "preconditioned edge crossed", "{{config}}: λ̃1/threshold ≥ 1"),
    annotation("Divergence", "red", labelled(
        f'harness_runs_ended_total{{status="diverged", {SEL}}} unless harness_runs_ended_total{{status="diverged", {SEL}}} offset 15s'),
        "diverged", "{{config}}"),
    annotation("Run start", "green", labelled(f'harness_run_info{{{SEL}}} unless harness_run_info{{{SEL}}} offset 15s'),
               "run started", "{{config}}"),
    annotation("Run end", "blue", labelled(
        f'harness_runs_ended_total{{{SEL}}} unless harness_runs_ended_total{{{SEL}}} offset 15s'),
        "run ended", "{{config}}: {{status}}"),
]

dashboard = {
    "title": "Optimizer harness", "uid": "optimizer-harness", "schemaVersion": 39, "version": 2, "editable": True,
    "time": {"from": "now-1h", "to": "now"}, "refresh": "10s",
    "annotations": {"list": annotations},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        variable("matrix", "matrix", "label_values(harness_run_info, matrix)"),
        variable("optimizer", "optimizer", 'label_values(harness_run_info{matrix=~"$matrix"}, optimizer)'),
        variable("model", "model", 'label_values(harness_run_info{matrix=~"$matrix", optimizer=~"$optimizer"}, model)'),
        variable("run", "run", 'label_values(harness_run_info{matrix=~"$matrix", optimizer=~"$optimizer", model=~"$model"}, run)'),
    ]},
    "panels": panels,
}
out = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "harness-dashboard.json"
out.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
print(f"wrote {out}")
