"""Usage from Prometheus's HTTP API, a cluster's durable home of the usage counters: one instant query a figure,
`sum by (namespace[, project]) (increase(counter[window]))`, which adds up every replica and survives their restarts
(a restart resets a counter; increase() counts across the reset)."""

from __future__ import annotations

from collections import defaultdict

import httpx

from kubevision.core.usage import FIGURES, Figure, Usage

TIMEOUT_SECONDS = 30


def query(figure: Figure, window: str, namespace: str | None, by_project: bool) -> str:
    """The PromQL of one figure over `window` (already checked by core.usage.parse_window)."""
    selectors = [s for s in (figure.selector, f'namespace="{namespace}"' if namespace else "") if s]
    keys = "namespace, project" if by_project else "namespace"
    return f"sum by ({keys}) (increase({figure.metric}{{{','.join(selectors)}}}[{window}]))"


def read(url: str, window: str, namespace: str | None, by_project: bool,
         client: httpx.Client | None = None) -> list[Usage]:
    """Each namespace's (or project's) figures; raises httpx.HTTPError or ValueError with Prometheus's reason."""
    figures: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    with client or httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_SECONDS) as http:
        for figure in FIGURES:
            response = http.get("/api/v1/query", params={"query": query(figure, window, namespace, by_project)})
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            if response.status_code != 200 or body.get("status") != "success":
                raise ValueError(f"Prometheus answered {response.status_code}: "
                                 f"{body.get('error') or response.text[:200]}")
            for sample in body["data"]["result"]:
                labels = sample["metric"]
                key = (labels.get("namespace", ""), labels.get("project", "") if by_project else "")
                figures[key][figure.field] = float(sample["value"][1])
    return [Usage(namespace=ns, project=project, **{
        field: value if field.endswith("seconds") else round(value) for field, value in values.items()})
        for (ns, project), values in sorted(figures.items())]
