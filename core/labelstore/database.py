"""Connections to the label store's database: SQLite (WAL) in local mode, PostgreSQL (psycopg 3) on a cluster.

A unit of work is one Session: `reading()` for queries, `writing()` for changes. On SQLite a writing session takes
the write lock when it begins (BEGIN IMMEDIATE), so two writers wait for each other instead of failing halfway;
readers never wait, thanks to WAL. The schema is brought to the latest migration when the database is opened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 60_000  # how long a SQLite writer waits for another's lock
MIGRATION_LOCK = 7_406_373_021  # a PostgreSQL advisory lock: one process migrates at a time
_migrating = threading.Lock()  # Alembic's context is global to the process: one migration at a time in it too


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def configure(connection, _record) -> None:
        connection.isolation_level = None  # let the begin hook below say how a transaction starts
        cursor = connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The engines and session factories of one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.reader = _sqlite_engine(url, immediate=False)
            self.writer = _sqlite_engine(url, immediate=True)
        else:
            self.reader = self.writer = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        self._read = sessionmaker(self.reader, expire_on_commit=False)
        self._write = sessionmaker(self.writer, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._write() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the latest migration; several processes may call it at once."""
        with _migrating, self.writer.connect() as connection:
            if not self.sqlite:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
            try:
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not self.sqlite:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                    connection.commit()

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


def open_database(url: str) -> Database:
    database = Database(url)
    database.migrate()
    return database
