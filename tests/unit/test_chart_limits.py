"""The `limits` value: one ConfigMap of the release namespace, mounted read-only where the gateway and the operator
read it (KUBEVISION_LIMITS_FILE), parsed as they parse it; its schema knows every field of core.limits.Limits."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import helm_python
import pytest
import yaml
from chart import CHART, NAMESPACE, VALUE_SETS, find, pod_spec, render, rendered

from kubevision.core.limits import Limits, LimitsFile


def limits_file(objects) -> LimitsFile:
    (config_map,) = find(objects, "ConfigMap", "limits")
    (text,) = config_map["data"].values()
    return LimitsFile.model_validate(yaml.safe_load(text))


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_limits_are_one_config_map_of_the_release_namespace_mounted_read_only_into_gateway_and_operator(
        value_set):
    """In the release namespace, never a tenant's (the `namespaced` set lists tenants): a team cannot change its own
    limits. A mounted folder, not a subPath, so that a changed ConfigMap reaches the running pods."""
    objects = rendered(value_set)
    (config_map,) = find(objects, "ConfigMap", "limits")
    assert config_map["metadata"]["namespace"] == NAMESPACE
    (key,) = config_map["data"]
    for name_component in ("gateway", "operator"):
        (deployment,) = find(objects, "Deployment", name_component)
        spec = pod_spec(deployment)
        volumes = [v["name"] for v in spec["volumes"] if v.get("configMap", {}).get("name")
                   == config_map["metadata"]["name"]]
        (container,) = spec["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] in volumes]
        assert mount["readOnly"] is True and "subPath" not in mount
        variables = {e["name"]: e.get("value") for e in container["env"]}
        assert variables["KUBEVISION_LIMITS_FILE"] == str(PurePosixPath(mount["mountPath"]) / key)


def test_no_limits_value_means_azures_s0_tier():
    limits = limits_file(rendered("defaults")).for_namespace("team-a")
    assert (limits.projects, limits.images_per_project, limits.tags_per_project, limits.iterations_per_project) == (
        100, 100_000, 500, 20)


def test_a_namespace_override_is_that_namespaces_alone_and_null_lifts_a_limit():
    parsed = limits_file(render({"limits": {"defaults": {"projects": 50},
                                            "namespaces": {"team-a": {"projects": 200, "tags_per_project": None}}}}))
    assert (parsed.for_namespace("team-a").projects, parsed.for_namespace("team-a").tags_per_project) == (200, None)
    assert (parsed.for_namespace("team-b").projects, parsed.for_namespace("team-b").tags_per_project) == (50, 500)


def test_the_schema_knows_every_limit_with_its_type_and_bounds():
    schema = json.loads((CHART / "values.schema.json").read_text())
    fields = schema["definitions"]["limits"]["properties"]
    assert set(fields) == set(Limits.model_fields)
    for name, field in Limits.model_fields.items():
        number = "integer" if int in field.annotation.__args__ else "number"
        assert fields[name]["type"] == [number, "null"] and fields[name]["description"] == field.description, name


@pytest.mark.parametrize(("values", "named"), [
    ({"defaults": {"project": 5}}, "project"),
    ({"defaults": {"projects": -1}}, "/limits/defaults/projects"),
    ({"defaults": {"projects": 1.5}}, "/limits/defaults/projects"),
    ({"namespaces": {"team-a": {"tags_per_project": "many"}}}, "/limits/namespaces/team-a/tags_per_project"),
    ({"namespaces": {"Team_A": {"projects": 1}}}, "Team_A"),
])
def test_a_wrong_limit_fails_naming_it(values, named):
    with pytest.raises(helm_python.HelmValuesError, match=named):
        render({"limits": values})
