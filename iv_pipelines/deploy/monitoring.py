"""Monitoring for a deployed capsule: a Prometheus scrape config and a Grafana dashboard, both
generated per deployment from what the capsule's `/metrics` actually exposes (a test scrapes a
real capsule and checks every series a panel queries is there).

Written by `dac_deployment` beside the deployment record (`<storage>/monitoring/<dac>/`):
`prometheus.yml` (one scrape job for the capsule, labelled with its DAC and version) and
`grafana-dashboard.json` (import it in Grafana with a Prometheus data source named by the
`DS_PROMETHEUS` input). No Prometheus or Grafana runs here; both files are validated by parsing.
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

SCRAPE_INTERVAL = "15s"

# (title, PromQL, unit, legend): each query's series names must exist in the capsule's /metrics
PANELS = (
    (
        "Requests by route and status",
        'sum by (route, status) (rate(capsule_requests_total{dac_id="$dac"}[5m]))',
        "reqps",
        "{{route}} {{status}}",
    ),
    (
        "Latency p99 by route",
        'histogram_quantile(0.99, sum by (le, route) (rate(capsule_request_latency_seconds_bucket{dac_id="$dac"}[5m])))',
        "s",
        "{{route}}",
    ),
    (
        "Decisions by class (windows/s)",
        'sum by (label) (rate(capsule_predictions_total{dac_id="$dac"}[5m]))',
        "ops",
        "{{label}}",
    ),
    (
        "Input: median amplitude CV per window",
        'histogram_quantile(0.5, sum by (le) (rate(capsule_window_amplitude_cv_bucket{dac_id="$dac"}[15m])))',
        "none",
        "amplitude CV p50",
    ),
    (
        "Input: median mean amplitude per window",
        'histogram_quantile(0.5, sum by (le) (rate(capsule_window_mean_amplitude_bucket{dac_id="$dac"}[15m])))',
        "none",
        "mean amplitude p50",
    ),
    (
        "Feedback: true label vs decision",
        'sum by (label, predicted) (increase(capsule_feedback_total{dac_id="$dac"}[1d]))',
        "short",
        "{{label}} (decided {{predicted}})",
    ),
    (
        "Windows kept in the inference log",
        'sum(rate(capsule_inference_log_windows_total{dac_id="$dac"}[5m]))',
        "ops",
        "logged",
    ),
)


def scrape_config(dac_id: str, version: str, url: str) -> dict:
    """A Prometheus config with one job scraping the capsule at `url`."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"capsule URL {url!r}: need http(s)://host:port")
    port = u.port or (443 if u.scheme == "https" else 80)
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": f"capsule-{dac_id}",
                "scheme": u.scheme,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [f"{u.hostname}:{port}"], "labels": {"dac_id": dac_id, "version": version}}
                ],
            }
        ],
    }


def grafana_dashboard(dac_id: str) -> dict:
    """A Grafana dashboard (schema 39) of the capsule's metrics, with `$dac` preset to `dac_id`."""
    panels = []
    for i, (title, expr, unit, legend) in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
            }
        )
    return {
        "__inputs": [
            {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus"}
        ],
        "title": f"DAC capsule {dac_id}",
        "uid": f"iv-{dac_id}"[:40],
        "schemaVersion": 39,
        "tags": ["industriverse", "dac"],
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "dac",
                    "type": "constant",
                    "query": dac_id,
                    "hide": 2,
                }
            ]
        },
        "panels": panels,
    }


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (identifiers followed by `{`)."""
    import re

    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))


def write_monitoring(directory, dac_id: str, version: str, url: str) -> list:
    """Write prometheus.yml and grafana-dashboard.json for the deployment; returns the paths."""
    from pathlib import Path

    import yaml

    from iv_pipelines.paths import atomic_write_text

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    prom, dash = d / "prometheus.yml", d / "grafana-dashboard.json"
    atomic_write_text(prom, yaml.safe_dump(scrape_config(dac_id, version, url), sort_keys=False))
    atomic_write_text(dash, json.dumps(grafana_dashboard(dac_id), indent=2) + "\n")
    return [prom, dash]
