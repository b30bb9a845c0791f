"""Usage's shared parts: every figure is a counter the gateway or the operator exports, the dashboard's table per
team asks Prometheus what `kubevision usage --prometheus` asks (tests/e2e/test_usage_prometheus.py asks a real
Prometheus), windows are read as Prometheus writes them, and a namespace that could break out of a PromQL selector is
refused."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import kubevision.gateway.metrics  # noqa: F401 - registers the gateway's counters
import kubevision.operator.metrics  # noqa: F401 - registers the operator's
from kubevision.cli.prometheus import query
from kubevision.core.usage import FIGURES, parse_window

REPO = Path(__file__).resolve().parents[2]


def test_every_figure_is_an_exported_counter_with_namespace_and_project_labels():
    counters = {f"{family.name}_total" for family in REGISTRY.collect() if family.type == "counter"}
    for figure in FIGURES:
        assert figure.metric in counters, figure.metric
    source = (REPO / "gateway" / "metrics.py").read_text() + (REPO / "operator" / "metrics.py").read_text()
    for block in re.findall(r'Counter\("kubevision_usage_\w+".*?\]\)', source, re.S):
        assert '["namespace", "project"' in block, block


def test_the_dashboard_shows_each_team_what_the_cli_shows():
    dashboard = json.loads((REPO / "charts" / "kubevision" / "dashboards" / "kubevision.json").read_text())
    (table,) = [p for p in dashboard["panels"] if p["title"].startswith("Usage per team")]
    assert [t["expr"] for t in table["targets"]] == [query(f, "$__range", None, False) for f in FIGURES]
    assert all(t["expr"].startswith("sum by (namespace) (") for t in table["targets"])


def test_the_queries_select_the_figure_and_the_namespace():
    stored, exports = FIGURES[0], FIGURES[4]
    series = 'kubevision_usage_predictions_total{stored="true",namespace="team-a"}'
    assert query(stored, "7d", "team-a", True) == (
        f"sum by (namespace, project) ((last_over_time({series}[7d]) - ({series} offset 7d or "
        f"last_over_time({series}[7d]) * 0)) unless resets({series}[7d]) > 0 or increase({series}[7d]))")
    assert query(exports, "24h", None, False).startswith(
        "sum by (namespace) ((last_over_time(kubevision_usage_exports_total{}[24h]) - ")


@pytest.mark.parametrize(("text", "window"), [("90m", timedelta(minutes=90)), ("24h", timedelta(days=1)),
                                              ("7d", timedelta(days=7)), (" 2w", timedelta(weeks=2))])
def test_windows_are_read_as_prometheus_writes_them(text, window):
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["", "24", "1y", "0h", "401d", "1.5h", "24h]) or vector(1", "-1d"])
def test_other_windows_are_refused(text):
    with pytest.raises(ValueError):
        parse_window(text)


def test_the_cli_refuses_a_namespace_that_is_no_name(kubevision_cli, tmp_path):
    refused = kubevision_cli("usage", "-n", 'a"}[1d]) or vector(1', "--prometheus", "http://127.0.0.1:9",
                             "--data-dir", str(tmp_path))
    assert refused.returncode == 1 and "no namespace name" in refused.stderr
