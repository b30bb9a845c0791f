"""Local mode keeps Events as the API server does: per object, counted when repeated, gone with the object."""

from datetime import UTC, datetime

from kubevision.local.store import LocalStore

PROJECT = {
    "apiVersion": "kubevision.io/v1alpha1", "kind": "CustomVisionProject", "metadata": {"name": "flowers"},
    "spec": {"displayName": "Flowers", "dataset": {"bucket": "datasets", "prefix": "default/flowers/"}},
}


def test_a_repeated_event_is_counted_and_a_recreated_object_starts_afresh(tmp_path):
    store = LocalStore(tmp_path / "resources.db")
    body, _ = store.apply(dict(PROJECT))
    first, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    store.record_event(body, "Warning", "TooFewImages", "tag a: 3 images", "controller", first)
    store.record_event(body, "Warning", "TooFewImages", "tag a: 3 images", "controller", later)
    store.record_event(body, "Normal", "Ready", "ready", "controller", later)
    assert [(e["reason"], e["count"], e["firstTimestamp"], e["lastTimestamp"]) for e in store.events(body)] == [
        ("TooFewImages", 2, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"),
        ("Ready", 1, "2026-01-01T00:05:00Z", "2026-01-01T00:05:00Z"),
    ]

    store.remove("CustomVisionProject", "default", "flowers")
    again, _ = store.apply(dict(PROJECT))
    assert again["metadata"]["uid"] != body["metadata"]["uid"] and store.events(again) == []
