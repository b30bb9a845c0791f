"""`kubevision get` and `describe` as a kubectl user expects them, over a local store (no servers needed): printer
columns from the CRDs, -o yaml|json|wide|name, one object by name, errors that name the resource, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubevision.local.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
PROJECT = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "flowers"},
    "spec": {"displayName": "Flowers", "dataset": {"bucket": "datasets", "prefix": "default/flowers/"}},
}
ITERATION = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "Iteration", "metadata": {"name": "flowers-1"},
    "spec": {"projectRef": {"name": "flowers"}, "trainingType": "Quick"},
}
NOT_READY = {
    "phase": "NotReady", "imageCount": 8, "tags": [{"tag": "rose", "images": 5}, {"tag": "tulip", "images": 3}],
    "conditions": [
        {"type": "DatasetReady", "status": "False", "reason": "TooFewImages",
         "message": 'tag "tulip" has 3 images, 5 needed', "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Ready", "status": "False", "reason": "DatasetNotReady",
         "message": 'tag "tulip" has 3 images, 5 needed', "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ],
}


@pytest.fixture
def cli(tmp_path, kubevision_cli):
    """The CLI over a data folder whose store holds a NotReady project and its iteration."""
    store = LocalStore(tmp_path / "resources.db")
    project, _ = store.apply(json.loads(json.dumps(PROJECT)))
    store.update_status("CustomVisionProject", "default", "flowers", NOT_READY, project["metadata"]["resourceVersion"])
    store.apply(json.loads(json.dumps(ITERATION)))
    store.record_event(project, "Warning", "TooFewImages", 'DatasetReady: tag "tulip" has 3 images, 5 needed',
                       "kubevision-local-controller")

    def run(*args: str):
        return kubevision_cli(*args, "--data-dir", str(tmp_path))

    run.store = store
    return run


@pytest.mark.parametrize("kind", ["customvisionprojects", "iterations"])
def test_get_prints_the_crds_printer_columns(cli, kind):
    crd = yaml.safe_load((REPO / "crds" / f"{kind}.kubevision.io.yaml").read_text().split("\n", 1)[1])
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert "Reason" in [c["name"] for c in columns if not c.get("priority")]
    assert "Message" in [c["name"] for c in columns if c.get("priority") == 1]
    plain, wide, every = cli("get", kind), cli("get", kind, "-o", "wide"), cli("get", kind, "-A")
    assert plain.returncode == wide.returncode == every.returncode == 0, plain.stderr + wide.stderr
    assert plain.stdout.split("\n")[0].split() == ["NAME", *(c["name"].upper() for c in columns
                                                            if not c.get("priority"))]
    assert wide.stdout.split("\n")[0].split() == ["NAME", *(c["name"].upper() for c in columns)]
    assert every.stdout.split("\n")[0].split()[:2] == ["NAMESPACE", "NAME"]


def test_a_not_ready_project_says_why(cli):
    row = cli("get", "projects").stdout.splitlines()[1].split()
    assert row[0] == "flowers" and "NotReady" in row and "DatasetNotReady" in row
    assert 'tag "tulip" has 3 images, 5 needed' in cli("get", "cvp", "flowers", "-o", "wide").stdout

    described = cli("describe", "project", "flowers")
    assert described.returncode == 0, described.stderr
    lines = described.stdout.splitlines()
    condition = next(line for line in lines if line.split()[:1] == ["DatasetReady"])
    assert condition.split()[:3] == ["DatasetReady", "False", "TooFewImages"]
    assert condition.endswith('tag "tulip" has 3 images, 5 needed')
    assert ["tulip", "3"] in [line.split() for line in lines] and ["rose", "5"] in [line.split() for line in lines]
    event = lines[lines.index("Events:") + 3].split()
    assert event[:2] == ["Warning", "TooFewImages"] and "kubevision-local-controller" in event


def test_yaml_round_trips_through_apply_unchanged(cli, tmp_path):
    for kind, name in (("cvp", "flowers"), ("cvi", "flowers-1")):
        shown = cli("get", kind, name, "-o", "yaml")
        assert shown.returncode == 0, shown.stderr
        document = yaml.safe_load(shown.stdout)
        stored = cli.store.get(document["kind"], "default", name)
        assert document == stored
        (tmp_path / "shown.yaml").write_text(shown.stdout)
        applied = cli("apply", "-f", str(tmp_path / "shown.yaml"))
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.strip() == f"{stored['kind'].lower()}.kubevision.io/{name} unchanged"
        assert cli.store.get(document["kind"], "default", name) == stored


def test_json_list_and_names_have_kubectls_shapes(cli):
    listing = json.loads(cli("get", "iterations", "-o", "json").stdout)
    assert listing["kind"] == "List" and listing["apiVersion"] == "v1"
    assert [item["metadata"]["name"] for item in listing["items"]] == ["flowers-1"]
    assert cli("get", "cvp", "-o", "name").stdout.split() == ["customvisionproject.kubevision.io/flowers"]


def test_errors_name_the_resource_and_exit_1(cli):
    missing = cli("get", "iterations", "tulips-1")
    assert missing.returncode == 1
    assert missing.stderr.strip() == ('error: iterations.kubevision.io "tulips-1" not found in namespace default; '
                                      "list what there is with: kubevision get iterations -n default")
    assert cli("describe", "cvp", "nothing").returncode == 1
    assert cli("delete", "cvi", "nothing").returncode == 1
    assert "unknown output format 'xml'" in cli("get", "cvi", "-o", "xml").stderr
    empty = cli("get", "cvi", "-n", "elsewhere")
    assert empty.returncode == 0 and empty.stderr.strip() == "No resources found in elsewhere namespace."
    not_started = cli("logs", "flowers-1")
    assert not_started.returncode == 1
    assert 'iteration "flowers-1" has not started training' in not_started.stderr
    assert "kubevision describe iteration flowers-1" in not_started.stderr
    wrong_flag = cli("get", "cvi", "--outptu", "yaml")
    assert wrong_flag.returncode == 1 and "No such option: --outptu" in wrong_flag.stderr
    no_platform = cli("upload", "-f", str(REPO / "examples" / "project.yaml"), str(REPO / "examples" / "samples"))
    assert no_platform.returncode == 1 and "run: kubevision local up" in no_platform.stderr


def test_upload_errors_name_the_project_file_and_folder(cli, tmp_path):
    project_file = REPO / "examples" / "project.yaml"
    empty = tmp_path / "empty"
    (empty / "rose").mkdir(parents=True)
    no_images = cli("upload", "-f", str(project_file), str(empty))
    assert no_images.returncode == 1
    assert no_images.stderr.strip() == (f"error: {empty} holds no tag folders with files; put each tag's images in "
                                        f"{empty}/<tag>/")
    no_project = tmp_path / "nothing.yaml"
    no_project.write_text("")
    wrong_file = cli("upload", "-f", str(no_project), str(REPO / "examples" / "samples"))
    assert wrong_file.returncode == 1
    assert wrong_file.stderr.strip() == (f"error: {no_project} holds 0 CustomVisionProjects; give the manifest of "
                                         "the one project to add the images to")


def test_logs_on_a_cluster_prints_the_kubectl_line(cli):
    shown = cli("logs", "flowers-1", "-n", "ml", "--cluster", "-f")
    assert shown.stdout.strip() == "kubectl logs -n ml -l kubevision.io/iteration=flowers-1 --tail=-1 --follow"
