"""How fast the label store is as a project grows, on SQLite and on PostgreSQL, with the real local S3.

    .venv/bin/python benchmarks/label_store.py [--sizes 1000 50000] [--batches 5]

Starts the local platform (for its S3) and a PostgreSQL server (Debian's package) in temporary folders. For each
database and project size it prints: the median latency of a 64-image upload batch (new 64 px PNGs: bytes to S3,
then rows), the median time of a 256-image page of tagged images (newest first, with tags), and the manifest export.
The project is filled to each size with rows of images whose bytes are not stored (the store never reads them when
listing or exporting), then PostgreSQL's statistics are gathered as autovacuum would; the uploads measured are real.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from PIL import Image
from sqlalchemy import insert, update

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from postgres_server import PostgresServer  # noqa: E402

from kubevision.core import dataset  # noqa: E402
from kubevision.core.labelstore import tables  # noqa: E402
from kubevision.core.labelstore.database import open_database, sqlite_url  # noqa: E402
from kubevision.core.labelstore.export import ManifestExporter  # noqa: E402
from kubevision.core.labelstore.store import LabelStore, NewImage, ProjectRef, now  # noqa: E402
from kubevision.core.settings import LocalSettings  # noqa: E402
from kubevision.core.storage import ObjectStore  # noqa: E402
from kubevision.local.supervisor import LocalPlatform  # noqa: E402

BUCKET = "label-store-benchmark"
FILL_CHUNK = 5000


def png(number: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (number % 256, number // 256 % 256, number // 65536 % 256)).save(buffer, format="PNG")
    return buffer.getvalue()


def fill(database, project: ProjectRef, tags: list[str], start: int, stop: int) -> None:
    """Rows of images start..stop-1, each with one of the tags."""
    moment = now()
    for first in range(start, stop, FILL_CHUNK):
        numbers = range(first, min(first + FILL_CHUNK, stop))
        shas = {n: hashlib.sha256(f"filler-{n}".encode()).hexdigest() for n in numbers}
        with database.writing() as session:
            session.execute(insert(tables.Image), [dict(
                project_id=project.id, id=dataset.image_id(shas[n]), sha256=shas[n], content_type="image/png",
                size=1000, width=64, height=64, created=moment) for n in numbers])
            session.execute(insert(tables.ImageTag), [dict(
                project_id=project.id, image_id=dataset.image_id(shas[n]), tag_id=tags[n % len(tags)],
                created=moment) for n in numbers])
            session.execute(update(tables.Project).where(tables.Project.id == project.id).values(
                labels_version=tables.Project.labels_version + 1))
    if database.dialect == "postgresql":  # statistics, as autovacuum gathers them after a large insert
        with database.writer.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def measure(name: str, url: str, objects: ObjectStore, sizes: list[int], batches: int) -> list[tuple]:
    database = open_database(url)
    store = LabelStore(database, objects)
    exporter = ManifestExporter(database, objects)
    project = ProjectRef(str(uuid.uuid4()), "bench", "bench", BUCKET, f"bench/{uuid.uuid4().hex}/")
    store.ensure_project(project)
    tags = [store.create_tag(project.id, name).id for name in ("a", "b")]
    rows, filled, uploaded = [], 0, 10_000_000
    for size in sizes:
        fill(database, project, tags, filled, size)
        filled = size
        upload = []
        for _ in range(batches):
            batch = [NewImage(png(uploaded + i), [tags[i % 2]]) for i in range(64)]
            uploaded += 64
            started = time.perf_counter()
            results = store.add_images(project, batch)
            upload.append(time.perf_counter() - started)
            assert all(r.status == "OK" for r in results), {r.status for r in results}
        pages = []
        for _ in range(10):
            started = time.perf_counter()
            page = store.images(project.id, tagged=True, take=256)
            pages.append(time.perf_counter() - started)
            assert len(page) == 256 and all(view.tags for view in page)
        started = time.perf_counter()
        exported = exporter.export(project.id)
        export_seconds = time.perf_counter() - started
        total = size + batches * 64 * (sizes.index(size) + 1)
        assert exported.images == total, (exported.images, total)
        rows.append((name, size, median_ms(upload), median_ms(pages), round(export_seconds, 2), exported.images))
        print(f"{name}: {size} images done", file=sys.stderr, flush=True)
    database.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 50_000])
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubevision-bench-") as folder:
        platform = LocalPlatform(LocalSettings(data_dir=Path(folder) / "platform", s3_port=0, mlflow_port=0,
                                               triton_http_port=0, triton_grpc_port=0, triton_metrics_port=0,
                                               gateway_port=0))
        postgres = PostgresServer()
        try:
            platform.up()
            postgres.start()
            objects = ObjectStore(platform.s3_settings())
            objects.ensure_bucket(BUCKET)
            rows = measure("SQLite", sqlite_url(Path(folder) / "labels.db"), objects, args.sizes, args.batches)
            rows += measure("PostgreSQL", postgres.new_database(), objects, args.sizes, args.batches)
        finally:
            postgres.stop()
            platform.down()
    print("| database | images in the project | 64-image upload batch (median ms) | 256 tagged images, one page "
          "(median ms) | manifest export (s) | images exported |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(value) for value in row) + " |")


if __name__ == "__main__":
    main()
