"""The store: connections, transactions, migrations, postings, balances, leases, credentials.

One code path for SQLite (the embedded default: WAL, `synchronous=FULL`, `BEGIN IMMEDIATE` for
writes so two writers queue instead of failing half-way) and PostgreSQL. Postings are only ever
inserted, each under a unique key, so a replayed write is a no-op; a balance is always a sum over
postings, never a stored number.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import operator
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from sync.ledger import schema
from sync.model import PostingKind
from sync.settings import Secret

if TYPE_CHECKING:  # cryptography loads only where an encryption key is configured
    from cryptography.fernet import Fernet

# The newest Alembic revision in `migrations/versions`; a test keeps the two in step.
SCHEMA_HEAD = "0004"


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


@dataclass(frozen=True, slots=True)
class BalanceParts:
    """A budget's balance split the way reports show it; all in the budget's minor unit."""

    unit: str
    opening: int = 0
    credited: int = 0
    debited: int = 0

    @property
    def balance(self) -> int:
        """Opening + credits - debits (I2)."""
        return self.opening + self.credited - self.debited


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
            installation_id(conn)

    def _at_head(self) -> bool:
        """True when the database is already at `SCHEMA_HEAD` (one cheap query)."""
        try:
            with self.read_engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except Exception:
            return False
        return version == SCHEMA_HEAD

    # --- leases ----------------------------------------------------------------------------

    def acquire_lease(
        self, name: str, holder: str, ttl: dt.timedelta, *, take_from_dead: bool = True
    ) -> str | None:
        """Take or renew the lease `name` for `holder`; None on success, else the holder.

        A lease row (not a session lock) survives pooled connections and expires by itself
        when its holder dies, so a killed replica never blocks the others for long. With
        `take_from_dead`, a lease whose holder was killed on this host is taken over at once;
        a claim that must stand even then (a tick its holder may have finished) passes False.
        """
        now = utcnow()
        values = {"name": name, "holder": holder, "expires_at": now + ttl}
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(schema.leases).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": holder, "expires_at": now + ttl},
            where=(schema.leases.c.holder == holder) | (schema.leases.c.expires_at < now),
        )
        with self.begin() as conn:
            conn.execute(stmt)
            current = str(
                conn.execute(
                    select(schema.leases.c.holder).where(schema.leases.c.name == name)
                ).scalar_one()
            )
            if current != holder and take_from_dead and _holder_is_dead(current):
                # The holder was killed on this very host: no need to wait for expiry.
                conn.execute(
                    schema.leases.update()
                    .where((schema.leases.c.name == name) & (schema.leases.c.holder == current))
                    .values(holder=holder, expires_at=now + ttl)
                )
                current = holder
        return None if current == holder else current

    def drop_expired_leases(self, prefix: str) -> None:
        """Sweep expired leases whose names start with `prefix` (one-off claims pile up)."""
        leases = schema.leases
        with self.begin() as conn:
            conn.execute(
                leases.delete().where(
                    leases.c.name.startswith(prefix, autoescape=True)
                    & (leases.c.expires_at < utcnow())
                )
            )

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if still ours)."""
        with self.begin() as conn:
            conn.execute(
                schema.leases.delete().where(
                    (schema.leases.c.name == name) & (schema.leases.c.holder == holder)
                )
            )


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


def _holder_is_dead(holder: str) -> bool:
    """True when `holder` ("host:pid") names a process of this host that no longer exists."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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


# --- small facts --------------------------------------------------------------------------


def get_meta(conn: Connection, key: str) -> str | None:
    """A value from the meta table."""
    value = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == key)).scalar()
    return None if value is None else str(value)


def _insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Store a value in the meta table (an upsert: replicas may write it at the same time)."""
    stmt = _insert(conn)(schema.meta).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def installation_id(conn: Connection) -> str:
    """A random id made once per database; part of every idempotency key we send, so two
    installations sharing one Stripe account can never replay each other's requests.
    """
    stmt = _insert(conn)(schema.meta).values(key="installation_id", value=secrets.token_hex(6))
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    value = get_meta(conn, "installation_id")
    assert value is not None
    return value


# --- postings and balances ----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _sqlite_stamp(value: dt.datetime) -> str:
    """A datetime as SQLite columns store it, exactly as `schema.UTCDateTime` does through
    SQLAlchemy: naive UTC text with microseconds ("2026-11-27 09:30:00.000000"). Cached: the
    rows of one page share their time stamps.
    """
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


# Rows that `insert_values` hands straight to the driver carry datetimes and dates; the driver
# converts them in C through these, so the hot path needs no per-row conversion. They store
# what SQLAlchemy stores (and replace the driver's defaults, deprecated since Python 3.12).
# SQLAlchemy's own statements convert before the driver, so they never reach these.
sqlite3.register_adapter(dt.datetime, _sqlite_stamp)
sqlite3.register_adapter(dt.date, functools.lru_cache(maxsize=4096)(dt.date.isoformat))
# None and bool have no adapter by default, so the driver probes each of them for adaptation
# hooks before binding it as NULL or 0/1 anyway. A registered adapter is found at once and
# binds the same: a sync's rows carry a dozen of these each, and inserting them got a third
# cheaper. `{}.get` is a built-in (no Python frame) that returns None for any key.
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
sqlite3.register_adapter(bool, int)


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows (dicts with the same keys) straight through the driver."""
    if rows:
        names = list(rows[0])
        if len(names) == 1:
            insert_values(conn, table, names, [(row[names[0]],) for row in rows])
        else:
            insert_values(conn, table, names, list(map(operator.itemgetter(*names), rows)))


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


def insert_postings(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append postings (each a dict of `schema.postings` columns). Keys are unique: a key that
    already exists means the same write happened before, and the database refuses a double.
    """
    bulk_insert(conn, schema.postings, rows)


def posting_count(conn: Connection, key_prefix: str) -> int:
    """How many postings have keys starting with `key_prefix` (to number the next one)."""
    return int(
        conn.execute(
            select(func.count()).where(
                schema.postings.c.key.startswith(key_prefix, autoescape=True)
            )
        ).scalar_one()
    )


def posting_exists(conn: Connection, key: str) -> bool:
    """True when a posting with this key was already written."""
    return (
        conn.execute(select(schema.postings.c.id).where(schema.postings.c.key == key)).first()
        is not None
    )


_CREDIT_KINDS = (PostingKind.TOPUP, PostingKind.REFILL_CREDIT)


def balances(
    conn: Connection, customer_id: str | None = None
) -> dict[tuple[str, str], BalanceParts]:
    """Every budget's balance, recomputed from postings (I2)."""
    p = schema.postings
    stmt = select(p.c.customer_id, p.c.budget_id, p.c.unit, p.c.kind, func.sum(p.c.amount_minor))
    if customer_id is not None:
        stmt = stmt.where(p.c.customer_id == customer_id)
    stmt = stmt.group_by(p.c.customer_id, p.c.budget_id, p.c.unit, p.c.kind)
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for cust, budget, unit, kind, total in conn.execute(stmt):
        acc = parts.setdefault(
            (cust, budget), {"unit": unit, "opening": 0, "credited": 0, "debited": 0}
        )
        amount = int(total or 0)
        if kind == PostingKind.OPENING:
            acc["opening"] += amount
        elif kind in _CREDIT_KINDS:
            acc["credited"] += amount
        else:
            acc["debited"] -= amount
    return {key: BalanceParts(**value) for key, value in parts.items()}


def budget_balance(conn: Connection, customer_id: str, budget_id: str) -> int:
    """One budget's balance in minor units, from postings."""
    p = schema.postings
    total = conn.execute(
        select(func.coalesce(func.sum(p.c.amount_minor), 0)).where(
            (p.c.customer_id == customer_id) & (p.c.budget_id == budget_id)
        )
    ).scalar_one()
    return int(total)


def stray_units(conn: Connection, customer_id: str, budget_id: str, unit: str) -> set[str]:
    """Units other than `unit` that a budget's postings were written in (a unit or currency
    change in the config); an index seek, whatever the size of the ledger."""
    p = schema.postings
    rows = conn.execute(
        select(p.c.unit)
        .where((p.c.customer_id == customer_id) & (p.c.budget_id == budget_id) & (p.c.unit != unit))
        .distinct()
    )
    return {str(row[0]) for row in rows}


# --- credentials --------------------------------------------------------------------------


class DatabaseCredentialStore:
    """`sync.ports.CredentialStore` over the `credentials` table.

    With `encryption_key` configured, values are sealed with Fernet (AES-128-CBC + HMAC) under
    a key derived from it, so a copied database file alone does not reveal a refresh token.
    """

    def __init__(self, ledger: Ledger, key: Secret | None) -> None:
        self._ledger = ledger
        self._fernet: Fernet | None = None
        if key:
            from cryptography.fernet import Fernet

            digest = hashlib.sha256(key.reveal().encode()).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def load(self, name: str) -> str | None:
        """The stored credential, or None."""
        c = schema.credentials
        with self._ledger.read() as conn:
            row = conn.execute(select(c.c.value, c.c.encrypted).where(c.c.name == name)).first()
        if row is None:
            return None
        value, encrypted = str(row[0]), bool(row[1])
        if not encrypted:
            return value
        if self._fernet is None:
            raise StoreUnavailable(f"credential {name} is encrypted but no encryption_key is set")
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise StoreUnavailable(
                f"credential {name} cannot be decrypted with the configured encryption_key"
            ) from None

    def save(self, name: str, value: str) -> None:
        """Store (replace) a credential and commit at once."""
        c = schema.credentials
        encrypted = self._fernet is not None
        stored = self._fernet.encrypt(value.encode()).decode() if self._fernet else value
        with self._ledger.begin() as conn:
            conn.execute(c.delete().where(c.c.name == name))
            conn.execute(
                c.insert().values(name=name, value=stored, encrypted=encrypted, updated_at=utcnow())
            )


def posting_row(
    *,
    key: str,
    customer: str,
    budget: str,
    kind: str,
    amount: int,
    unit: str,
    now: dt.datetime,
    reason: str,
    note: str | None = None,
    refill_id: str | None = None,
) -> dict[str, object]:
    """A posting that belongs to no entry (opening, top-up, refill credit), as a row."""
    return {
        "key": key,
        "customer_id": customer,
        "budget_id": budget,
        "kind": kind,
        "amount_minor": amount,
        "unit": unit,
        "entry_id": None,
        "entry_version": None,
        "rule": None,
        "refill_id": refill_id,
        "work_date": now.date(),
        "recorded_at": now,
        "run_id": None,
        "reason": reason,
        "note": note,
    }
