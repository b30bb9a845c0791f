"""Local mode's limits: limits.yaml in the data folder, followed while the platform runs (written, changed, broken,
removed), unless KUBEVISION_LIMITS_FILE names another file."""

from __future__ import annotations

import pytest
from limits_files import write_limits_text

from kubevision.core.limits import limits_source


def test_the_data_folders_file_is_followed_from_before_it_exists_until_it_is_removed(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBEVISION_LIMITS_FILE", raising=False)
    limits = limits_source(tmp_path)
    assert limits.for_namespace("default").projects == 100  # no file: Azure's S0

    write_limits_text(tmp_path / "limits.yaml", "namespaces: {default: {projects: 3}}\n")
    assert limits.for_namespace("default").projects == 3
    assert limits.for_namespace("team-b").projects == 100

    # a typo keeps the last good limits
    write_limits_text(tmp_path / "limits.yaml", "namespaces: {default: {projects: [}\n")
    assert limits.for_namespace("default").projects == 3 and "limits.yaml" in limits.error

    (tmp_path / "limits.yaml").unlink()
    assert limits.for_namespace("default").projects == 100 and limits.error == ""


def test_a_wrong_file_stops_the_start_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBEVISION_LIMITS_FILE", raising=False)
    (tmp_path / "limits.yaml").write_text("defaults: {project: 3}\n")
    with pytest.raises(ValueError, match="project"):
        limits_source(tmp_path)


def test_the_file_the_environment_names_comes_first(tmp_path, monkeypatch):
    (tmp_path / "limits.yaml").write_text("defaults: {projects: 3}\n")
    named = tmp_path / "platform-limits.yaml"
    named.write_text("defaults: {projects: 7}\n")
    monkeypatch.setenv("KUBEVISION_LIMITS_FILE", str(named))
    assert limits_source(tmp_path).for_namespace("default").projects == 7
