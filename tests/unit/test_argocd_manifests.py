"""The Argo CD examples install what they say: the Application's chart and values render (the schema accepts
them), generated secrets survive a sync, and the ApplicationSet gives each team folder its own namespace."""

from __future__ import annotations

from pathlib import Path

import yaml
from chart import find, render

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "deploy" / "argocd"


def test_the_application_installs_the_chart_with_its_values():
    application = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    source, destination = application["spec"]["source"], application["spec"]["destination"]
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    objects = render(source["helm"]["valuesObject"], namespace=destination["namespace"])
    assert find(objects, "Ingress") and {b["metadata"]["namespace"] for b in find(objects, "RoleBinding")} == {
        "team-a", "team-b"}
    options = application["spec"]["syncPolicy"]["syncOptions"]
    assert {"CreateNamespace=true", "ServerSideApply=true", "RespectIgnoreDifferences=true"} <= set(options)


def test_generated_secrets_are_not_replaced_on_sync():
    application = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    ignored = application["spec"]["ignoreDifferences"]
    assert {"kind": "Secret", "jsonPointers": ["/data", "/stringData"]} in ignored


def test_the_application_set_syncs_each_team_folder_into_its_namespace():
    application_set = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text())
    (generator,) = application_set["spec"]["generators"]
    template = application_set["spec"]["template"]
    assert generator["git"]["directories"] == [{"path": "teams/*"}]
    assert template["spec"]["destination"]["namespace"] == "{{ .path.basename }}"
    assert template["spec"]["source"]["path"] == "{{ .path.path }}"
    assert application_set["spec"]["goTemplate"] is True
