"""Operator settings from a YAML file, with the environment on top."""

from __future__ import annotations

import pydantic
import pytest

from kubevision.core.settings import OperatorSettings


def test_a_config_file_sets_fields_and_the_environment_overrides_it(tmp_path, monkeypatch):
    config = tmp_path / "operator.yaml"
    config.write_text("namespaces: [ml, vision]\ntriton_gpus: 1\ntraining_memory: 8Gi\n")
    monkeypatch.setenv("KUBEVISION_OPERATOR_TRAINING_MEMORY", "12Gi")
    settings = OperatorSettings.from_file(config)
    assert settings.namespaces == ["ml", "vision"] and settings.triton_gpus == 1
    assert settings.training_memory == "12Gi"
    assert settings.trainer_image == OperatorSettings().trainer_image  # untouched fields keep their defaults


@pytest.mark.parametrize("text, field", [("tritn_gpus: 1\n", "tritn_gpus"), ("triton_gpus: many\n", "triton_gpus")])
def test_a_wrong_key_or_value_in_the_config_file_names_the_field(tmp_path, text, field):
    config = tmp_path / "operator.yaml"
    config.write_text(text)
    with pytest.raises(pydantic.ValidationError) as error:
        OperatorSettings.from_file(config)
    assert [e["loc"] for e in error.value.errors()] == [(field,)]


def test_a_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OperatorSettings.from_file(tmp_path / "absent.yaml")
