"""The usage ledger on SQLite and PostgreSQL: two gateways' batches add up in one row a project and hour, a training
offered again (another replica, a restart) is kept once, and the totals of a window hold one namespace's figures
when one is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubevision.core.labelstore.database import open_database
from kubevision.core.labelstore.usage import UsageLedger
from kubevision.core.usage import TrainingUse, Usage

NOW = datetime.now(UTC)


def training(uid: str, namespace: str, project: str, ended: datetime, seconds: float, gpus: int) -> TrainingUse:
    return TrainingUse(uid, namespace, project, f"{project}-1", ended, seconds, gpus)


@pytest.fixture
def database(database_url):
    opened = open_database(database_url)
    yield opened
    opened.dispose()


def test_replicas_batches_add_up_and_each_team_sees_its_own(database):
    first, second = UsageLedger(database), UsageLedger(database)  # two gateway replicas
    first.add("team-a", "cats", predictions_stored=2, images_stored=3, image_bytes=3000)
    second.add("team-a", "cats", predictions_stored=1, predictions_not_stored=4)
    second.add("team-a", "dogs", exports=1)
    first.add("team-b", "cats", predictions_stored=7)
    first.add("team-a", "cats", at=NOW - timedelta(days=3), predictions_stored=100)  # outside a day's window
    assert (first.flush(), second.flush(), first.flush()) == (3, 2, 0)
    second.add("team-a", "cats", predictions_stored=1)
    second.flush()
    assert first.record_trainings([training("u1", "team-a", "cats", NOW - timedelta(hours=2), 600, 2),
                                   training("u2", "team-b", "cats", NOW, 60, 0)]) == 2
    assert second.record_trainings([training("u1", "team-a", "cats", NOW - timedelta(hours=2), 600, 2)]) == 0
    assert first.record_trainings([training("u3", "team-a", "dogs", NOW - timedelta(days=2), 50, 1)]) == 1

    day = NOW - timedelta(days=1)
    assert first.totals(day) == [
        Usage("team-a", predictions_stored=4, predictions_not_stored=4, images_stored=3, image_bytes=3000, exports=1,
              trainings=1, training_seconds=600, gpu_seconds=1200),
        Usage("team-b", predictions_stored=7, trainings=1, training_seconds=60)]
    assert first.totals(day, "team-a", by_project=True) == [
        Usage("team-a", "cats", predictions_stored=4, predictions_not_stored=4, images_stored=3, image_bytes=3000,
              trainings=1, training_seconds=600, gpu_seconds=1200),
        Usage("team-a", "dogs", exports=1)]
    assert first.totals(NOW - timedelta(days=4), "team-a")[0].predictions_stored == 104
    assert first.totals(day, "team-c") == []
    with pytest.raises(ValueError, match="no such usage figure: trainings"):  # trainings are counted once each
        first.add("team-a", "cats", trainings=1)
