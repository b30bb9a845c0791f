"""Usage from Prometheus's HTTP API, a cluster's durable home of the usage counters: one instant query a figure,
summed by namespace (and project) over every series, that is every replica, old and new.

Not plain `increase(counter[window])`: a real Prometheus answers it with an estimate, not the calls counted. It
extrapolates the increase between a window's first and last samples out to the window's edges (5000 bytes, scraped
for a few seconds, came out as 5231 to 6037 as the query time moved), and it takes a series' first sample as its
start, so a series born at 3 (a replica that answered calls before its series first showed at 0) counts 0. So each
series counts its last value in the window less its value when the window began (the last sample at or before
then), or less 0 if it did not exist then: exact to the scrape, the calls up to the last scrape. A series that reset
in the window (its container restarted in its pod; a new pod is a new series) has no such difference; for it alone
`increase()` counts across the reset, an estimate, rounded to whole calls and images."""

from __future__ import annotations

from collections import defaultdict

import httpx

from kubevision.core.usage import FIGURES, Figure, Usage

TIMEOUT_SECONDS = 30


def query(figure: Figure, window: str, namespace: str | None, by_project: bool) -> str:
    """The PromQL of one figure over `window` (already checked by core.usage.parse_window)."""
    selectors = [s for s in (figure.selector, f'namespace="{namespace}"' if namespace else "") if s]
    keys = "namespace, project" if by_project else "namespace"
    series = f"{figure.metric}{{{','.join(selectors)}}}"
    counted = (f"last_over_time({series}[{window}]) - "
               f"({series} offset {window} or last_over_time({series}[{window}]) * 0)")
    return (f"sum by ({keys}) (({counted}) unless resets({series}[{window}]) > 0"
            f" or increase({series}[{window}]))")


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
