"""docs/install.md's values reference is the one the schema and the defaults give, and the files it points to exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "install.md"


def load_generator():
    spec = importlib.util.spec_from_file_location("values_reference", REPO / "charts" / "values_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_values_reference_is_current():
    generator = load_generator()
    page = PAGE.read_text()
    assert generator.page_with_reference(page) == page, "run: .venv/bin/python charts/values_reference.py --write"
    assert "| `gateway.ingress.host` |" in page and "| `postgresql.existingSecret` |" in page


def test_the_reference_changes_with_the_schema():
    generator = load_generator()
    stale = PAGE.read_text().replace("| `triton.gpus` | `0` |", "| `triton.gpus` | `1` |")
    assert generator.page_with_reference(stale) != stale


def test_every_repository_path_the_page_names_exists():
    paths = set(re.findall(r"`((?:charts|deploy|examples|docs)/[\w./-]+)`", PAGE.read_text()))
    paths |= set(re.findall(r"\s((?:charts|deploy|examples)/[\w./-]+\.(?:yaml|py|sh|jpg))", PAGE.read_text()))
    assert paths and [p for p in sorted(paths) if not (REPO / p).exists()] == []
