"""The Kubernetes emulator that the operator's tests run against: garbage collection, lists and watch resumption,
served from its indexes."""

from __future__ import annotations

import json

import pytest
from kube_emulator import KubeEmulator

pytestmark = pytest.mark.kmock(cls=KubeEmulator, strict=True)
CONFIGMAPS = "/api/v1/namespaces/ns/configmaps"
SECRETS = "/api/v1/namespaces/ns/secrets"


async def create(kmock, path: str, name: str, owners: list[dict] = ()) -> dict:
    response = await kmock.post(path, json={"metadata": {"name": name, "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}
        for o in owners]}})
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def names(kmock, path: str) -> list[str]:
    return sorted(item["metadata"]["name"] for item in (await (await kmock.get(path)).json())["items"])


async def test_a_deleted_owner_takes_the_dependents_it_alone_owned(kmock):
    owner, other = await create(kmock, CONFIGMAPS, "owner"), await create(kmock, CONFIGMAPS, "other")
    await create(kmock, SECRETS, "only-owner", [owner])
    await create(kmock, SECRETS, "two-owners", [owner, other])
    await create(kmock, SECRETS, "unowned")
    await kmock.delete(f"{CONFIGMAPS}/owner")
    assert await names(kmock, SECRETS) == ["two-owners", "unowned"]
    await kmock.delete(f"{CONFIGMAPS}/other")
    assert await names(kmock, SECRETS) == ["unowned"]
    assert await names(kmock, CONFIGMAPS) == []
    assert (await (await kmock.get(f"{SECRETS}/unowned")).json())["metadata"]["name"] == "unowned"
    assert (await kmock.get(f"{SECRETS}/only-owner")).status == 404


async def test_a_resumed_watch_replays_only_what_came_after(kmock):
    first = await create(kmock, CONFIGMAPS, "first")
    await create(kmock, SECRETS, "a-secret")
    await create(kmock, CONFIGMAPS, "second")
    since = first["metadata"]["resourceVersion"]
    response = await kmock.get(f"{CONFIGMAPS}?watch=true&resourceVersion={since}&timeoutSeconds=1")
    events = [json.loads(line) for line in (await response.text()).splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "second")]
