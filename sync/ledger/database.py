"""The store's engine: connections, transactions, migrations and the SQLite set-up.

One code path for SQLite (the embedded default: WAL, `synchronous=FULL`, `BEGIN IMMEDIATE` for
writes so two writers queue instead of failing half-way) and PostgreSQL. The tables' SQL lives
in the modules beside this one, one per table family; this module hands them connections.
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from sync.ledger import leases, meta, schema

T = TypeVar("T")

# The newest Alembic revision in `migrations/versions`; a test keeps the two in step.
SCHEMA_HEAD = "0007"


class StoreUnavailable(Exception):
    """The database cannot be opened or reached; the message names the URL without password."""


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def safe_url(url: str) -> str:
    """The database URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unreadable database URL>"


class Ledger:
    """Opens the database and hands out transactions. Cheap to create, one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreUnavailable(
                f"unsupported database {safe_url(url)}: use sqlite or postgresql"
            )
        self._pinned: Connection | None = None
        if self.dialect == "sqlite":
            register_sqlite_adapters()
            # Pooled connections: closing the last connection to a WAL database checkpoints
            # it, which costs more than the work of a small transaction.
            self.engine = create_engine(url)
            self.read_engine = create_engine(url)
            _configure_sqlite(self.engine, begin="BEGIN IMMEDIATE")
            _configure_sqlite(self.read_engine, begin="BEGIN")
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
            self.read_engine = self.engine

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on any exception."""
        if self._pinned is not None:
            with self._pinned.begin_nested():
                yield self._pinned
            return
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(_describe_db_error(self.url, exc)) from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot that never blocks writers."""
        if self._pinned is not None:
            yield self._pinned
            return
        try:
            with self.read_engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(_describe_db_error(self.url, exc)) from None

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Everything written inside is rolled back at the end (`--dry-run`)."""
        with self.engine.connect() as conn:
            outer = conn.begin()
            self._pinned = conn
            try:
                yield
            finally:
                self._pinned = None
                outer.rollback()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.read_engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
        self.read_engine.dispose()

    # --- migrations ------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to head (safe to run on every start).

        An empty database gets the tables of `schema` at once, stamped at `SCHEMA_HEAD`, as
        Alembic advises for new databases; one with tables is migrated. A test keeps the two
        paths identical (Alembic's own comparison of the migrated schema with `schema`).
        """
        if self._at_head():
            return
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # Several replicas may start together: one migrates, the others wait.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7362910001)")
                if inspect(conn).get_table_names():
                    _migrate(conn)
                else:
                    _create_at_head(conn)
        except OperationalError as exc:
            raise StoreUnavailable(_describe_db_error(self.url, exc)) from None
        with self.begin() as conn:
            meta.installation_id(conn)

    def schema_state(self) -> Literal["empty", "behind", "current"]:
        """Where the schema stands, found without creating or changing anything: "empty" when
        the database has no tables yet (a SQLite file that does not exist, or is empty, is
        not created: connecting would), "behind" when it needs migrations, "current" at
        `SCHEMA_HEAD`. The read commands ask this instead of calling `upgrade`: they never
        write, not even a schema.
        """
        if self.dialect == "sqlite":
            name = make_url(self.url).database
            if name and name != ":memory:" and not name.startswith("file:"):
                path = Path(name)
                if not path.exists() or (path.is_file() and path.stat().st_size == 0):
                    return "empty"
        if self._at_head():
            return "current"
        try:
            with self.read_engine.connect() as conn:
                tables = inspect(conn).get_table_names()
        except OperationalError as exc:
            raise StoreUnavailable(_describe_db_error(self.url, exc)) from None
        return "behind" if tables else "empty"

    def _at_head(self) -> bool:
        """True when the database is already at `SCHEMA_HEAD` (one cheap query)."""
        try:
            with self.read_engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except Exception:
            return False
        return version == SCHEMA_HEAD

    # --- leases (the SQL is in `leases`) --------------------------------------------------

    def acquire_lease(
        self, name: str, holder: str, ttl: dt.timedelta, *, take_from_dead: bool = True
    ) -> str | None:
        """Take or renew the lease `name` for `holder`; None on success, else the holder.
        See `leases.acquire` for when a dead holder's lease is taken over.
        """
        with self.begin() as conn:
            return leases.acquire(conn, name, holder, utcnow(), ttl, take_from_dead=take_from_dead)

    def drop_expired_leases(self, prefix: str) -> None:
        """Sweep expired leases whose names start with `prefix` (one-off claims pile up)."""
        with self.begin() as conn:
            leases.drop_expired(conn, prefix, utcnow())

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if still ours)."""
        with self.begin() as conn:
            leases.release(conn, name, holder)


BOOKS_LOCK = 7362910002


def lock_books(conn: Connection) -> None:
    """Serialise book-keeping writers that derive posting keys from what exists (openings,
    re-valuation, review decisions, top-ups) across replicas, until the transaction ends.
    SQLite needs nothing: `BEGIN IMMEDIATE` already admits one writer at a time.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({BOOKS_LOCK})")


def _migrate(conn: Connection) -> None:
    """Run the Alembic migrations up to head on `conn`, inside its transaction."""
    from alembic import command  # imported here: most starts never migrate
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "sync.ledger:migrations")
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _create_at_head(conn: Connection) -> None:
    """Create every table of an empty database and record it as migrated to `SCHEMA_HEAD`."""
    schema.metadata.create_all(conn)
    conn.exec_driver_sql(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
        " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.exec_driver_sql(f"INSERT INTO alembic_version (version_num) VALUES ('{SCHEMA_HEAD}')")


def _configure_sqlite(engine: Engine, *, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # A new file gets 16 KiB pages (a no-op for an existing one): a quarter of the page
        # reads, writes and splits of the 4 KiB default when a sync appends thousands of rows.
        cursor.execute("PRAGMA page_size=16384")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # 16 MB of page cache (the default is 2 MB): a sync's index pages stay in memory
        # instead of being read back from the file for every row.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


def _describe_db_error(url: str, exc: OperationalError) -> str:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "unreachable"
    return f"database {safe_url(url)}: {detail}"


@functools.lru_cache(maxsize=4096)
def _sqlite_stamp(value: dt.datetime) -> str:
    """A datetime as SQLite columns store it, exactly as `schema.UTCDateTime` does through
    SQLAlchemy: naive UTC text with microseconds ("2026-11-27 09:30:00.000000"). Cached: the
    rows of one page share their time stamps.
    """
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


@functools.cache
def register_sqlite_adapters() -> None:
    """Teach the sqlite3 driver to bind the values `insert_values` hands it (once per process).

    Rows that `insert_values` hands straight to the driver carry datetimes and dates; the
    driver converts them in C through these, so the hot path needs no per-row conversion. They
    store what SQLAlchemy stores (and replace the driver's defaults, deprecated since Python
    3.12). SQLAlchemy's own statements convert before the driver, so they never reach these.
    The adapters are process-wide (the driver has no other kind), hence an explicit call from
    `Ledger` for SQLite URLs rather than a side effect of importing this module.
    """
    sqlite3.register_adapter(dt.datetime, _sqlite_stamp)
    sqlite3.register_adapter(dt.date, functools.lru_cache(maxsize=4096)(dt.date.isoformat))
    # None and bool have no adapter by default, so the driver probes each of them for
    # adaptation hooks before binding it as NULL or 0/1 anyway. A registered adapter is found
    # at once and binds the same: a sync's rows carry a dozen of these each, and inserting them
    # got a third cheaper. `{}.get` is a built-in (no Python frame) returning None for any key.
    sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
    sqlite3.register_adapter(bool, int)


def insert_values(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert many rows, each a tuple of values for `names`, through the driver's executemany.

    The hot path of a sync writes tens of thousands of rows; SQLAlchemy's per-row parameter
    processing costs more than the database itself there. Aware datetimes are stored as the
    dialect stores them (naive UTC text for SQLite, as `schema.UTCDateTime` does).
    """
    if not rows:
        return
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(mark for _ in names)})"
    conn.exec_driver_sql(sql, list(rows))


# Stay well below SQLite's bound-parameter limit in IN (...) lists.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
