"""The ledger's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Amounts are integers in the budget's unit (currency minor units, or seconds for hours
budgets); timestamps are stored in UTC and come back timezone-aware. `postings` is
append-only: the code never updates or deletes a row in it, and its unique `key` makes every
write idempotent. The Alembic revisions in `migrations/` create exactly these tables; a test
compares the two.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A datetime stored as UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError("naive or non-datetime value for a UTC column")
        utc: dt.datetime = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = MetaData()

# Each fetched time entry, current version. `status`..`rule` cache the last assessment for
# listings; the money truth is always `postings`.
entries = Table(
    "entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("external_id", String(200), nullable=False),
    Column("version", String(200), nullable=False),
    Column("spent_date", Date, nullable=False),
    Column("seconds", BigInteger, nullable=False),
    Column("billable", Boolean, nullable=False),
    Column("start_at", UTCDateTime),
    Column("stop_at", UTCDateTime),
    Column("running", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("user_id", String(200)),
    Column("user_name", Text),
    Column("client_id", String(200)),
    Column("client_name", Text),
    Column("project_id", String(200)),
    Column("project_name", Text),
    Column("task_id", String(200)),
    Column("task_name", Text),
    Column("tags", Text, nullable=False, default="[]"),
    Column("description", Text, nullable=False, default=""),
    Column("rate", String(40)),
    Column("rate_currency", String(3)),
    Column("raw", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", Text),
    Column("customer_id", String(100)),
    Column("budget_id", String(100)),
    Column("unit", String(10)),
    Column("amount_minor", BigInteger, nullable=False, default=0),
    Column("rule", String(200)),
    # `Priced.version` of the cached assessment's figures (None when it could not be priced).
    Column("priced", String(16)),
    Column("decision", String(20)),
    Column("decision_version", String(200)),
    Column("decided_at", UTCDateTime),
    # The budget and priced figures a decision was made on (I4a); None before revision 0006.
    Column("decision_customer", String(100)),
    Column("decision_budget", String(100)),
    Column("decision_unit", String(10)),
    Column("decision_seconds", BigInteger),
    Column("decision_rate", String(40)),
    Column("decision_amount", BigInteger),
    Column("seen_run", Integer),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "external_id", name="uq_entries_source_external_id"),
    Index("ix_entries_source_spent_date", "source", "spent_date"),
    # Only entries waiting for review: what the balance and the status page look up. A full
    # (customer, status) index cost a tenth of a big sync's inserts for no query that needed it.
    Index(
        "ix_entries_pending",
        "customer_id",
        "budget_id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

# Records a source could not read, with the reason; resolved when a valid version arrives
# or a later complete re-read no longer contains them.
invalid_records = Table(
    "invalid_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("locator", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("external_id", String(200)),
    Column("spent_date", Date),
    Column("raw", Text, nullable=False),
    Column("run_id", Integer),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    UniqueConstraint("source", "fingerprint", name="uq_invalid_records_fingerprint"),
)

# The append-only ledger. amount_minor > 0 credits the budget, < 0 debits it.
postings = Table(
    "postings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("customer_id", String(100), nullable=False),
    Column("budget_id", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("unit", String(10), nullable=False),
    Column("entry_id", Integer, ForeignKey("entries.id")),
    Column("entry_version", String(200)),
    Column("rule", String(200)),
    Column("refill_id", String(200)),
    Column("work_date", Date),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("run_id", Integer),
    Column("reason", Text, nullable=False),
    Column("note", Text),
    # Postings of an entry only: what a client reads about the amount (no tracker ids, no
    # YAML paths), and which posting of the entry on this budget it is (`EntryRole`).
    Column("explanation", Text),
    Column("entry_role", String(20)),
    Index("ix_postings_budget_unit", "customer_id", "budget_id", "unit"),
    Index("ix_postings_entry", "entry_id"),
)

# Refill intents and their invoices. The partial unique index makes I3 structural: a budget
# can never have two refills in an open state at once.
refills = Table(
    "refills",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("customer_id", String(100), nullable=False),
    Column("budget_id", String(100), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("sink", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("open_slot", Integer),
    Column("amount_minor", BigInteger, nullable=False),
    Column("unit", String(10), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("invoice_amount_minor", BigInteger, nullable=False),
    Column("quantity", String(40), nullable=False),
    Column("unit_price", String(40), nullable=False),
    Column("description", Text, nullable=False),
    Column("credit_on", String(10), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("idempotency_key", String(255), nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("invoice_id", String(200)),
    Column("invoice_number", String(200)),
    Column("invoice_url", Text),
    Column("step", String(40), nullable=False, default=""),
    Column("invoice_status", String(20)),
    Column("amount_paid_minor", BigInteger),
    Column("invoice_total_minor", BigInteger),
    Column("error", Text),
    Column("payment_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("issued_at", UTCDateTime),
    Column("paid_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    UniqueConstraint("customer_id", "budget_id", "seq", name="uq_refills_budget_seq"),
    UniqueConstraint("customer_id", "budget_id", "open_slot", name="uq_refills_open_slot"),
    Index("ix_refills_invoice", "sink", "invoice_id"),
)

# Webhook deliveries seen, so a repeated delivery is recognised and ignored.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("sink", String(100), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("refill_id", String(200)),
    Column("outcome", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

# Per-source incremental state.
source_state = Table(
    "source_state",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("cursor", Text),
    Column("last_reconciled_at", UTCDateTime),
)

# One row per sync of a source, for summaries, the status page and metrics.
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(20), nullable=False),
    Column("counts", Text, nullable=False, default="{}"),
    Column("error", Text),
    Index("ix_sync_runs_source", "source", "id"),
)

# Who may do a piece of exclusive work (a source's sync, a budget's refill) until when.
leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Credentials the program must keep (rotated OAuth refresh tokens), encrypted when a key is set.
credentials = Table(
    "credentials",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("encrypted", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Small facts about this database: installation id, the pricing config's fingerprint.
meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


def upsert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in the connection's dialect, so that it takes an
    `on_conflict_do_update` or `on_conflict_do_nothing` clause (SQLite and PostgreSQL spell
    those alike, but SQLAlchemy builds them per dialect)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(table)
