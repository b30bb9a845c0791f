"""A namespace's keys on the local platform, as its gateway takes them."""

from __future__ import annotations

import time

import httpx


def wait_for_key(gateway: str, key: str) -> None:
    """The gateway reads a new namespace's keys within a second."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{gateway}/customvision/v3.3/training/projects", headers={"Training-Key": key},
                    timeout=10).status_code == 401:
        assert time.monotonic() < deadline, "the gateway did not take the new key"
        time.sleep(0.2)
