"""Initial schema: entries, invalid records, postings, refills, webhooks, runs, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "credentials",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("spent_date", sa.Date(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("user_name", sa.Text(), nullable=True),
        sa.Column("client_id", sa.String(length=200), nullable=True),
        sa.Column("client_name", sa.Text(), nullable=True),
        sa.Column("project_id", sa.String(length=200), nullable=True),
        sa.Column("project_name", sa.Text(), nullable=True),
        sa.Column("task_id", sa.String(length=200), nullable=True),
        sa.Column("task_name", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=True),
        sa.Column("rate_currency", sa.String(length=3), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("customer_id", sa.String(length=100), nullable=True),
        sa.Column("budget_id", sa.String(length=100), nullable=True),
        sa.Column("unit", sa.String(length=10), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("decision_version", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_run", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id", name="uq_entries_source_external_id"),
    )
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.create_index("ix_entries_customer_status", ["customer_id", "status"], unique=False)
        batch_op.create_index(
            "ix_entries_source_spent_date", ["source", "spent_date"], unique=False
        )

    op.create_table(
        "invalid_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("locator", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("spent_date", sa.Date(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "fingerprint", name="uq_invalid_records_fingerprint"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "refills",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("budget_id", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("open_slot", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("invoice_amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("unit_price", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("credit_on", sa.String(length=10), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.String(length=200), nullable=True),
        sa.Column("invoice_number", sa.String(length=200), nullable=True),
        sa.Column("invoice_url", sa.Text(), nullable=True),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("invoice_status", sa.String(length=20), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("payment_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "budget_id", "open_slot", name="uq_refills_open_slot"),
        sa.UniqueConstraint("customer_id", "budget_id", "seq", name="uq_refills_budget_seq"),
    )
    with op.batch_alter_table("refills", schema=None) as batch_op:
        batch_op.create_index("ix_refills_invoice", ["sink", "invoice_id"], unique=False)

    op.create_table(
        "source_state",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("last_reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index("ix_sync_runs_source", ["source", "id"], unique=False)

    op.create_table(
        "webhook_events",
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("refill_id", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", "event_id"),
    )
    op.create_table(
        "postings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("budget_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("entry_version", sa.String(length=200), nullable=True),
        sa.Column("rule", sa.String(length=200), nullable=True),
        sa.Column("refill_id", sa.String(length=200), nullable=True),
        sa.Column("work_date", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["entries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index("ix_postings_budget", ["customer_id", "budget_id"], unique=False)
        batch_op.create_index("ix_postings_entry", ["entry_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index("ix_postings_entry")
        batch_op.drop_index("ix_postings_budget")

    op.drop_table("postings")
    op.drop_table("webhook_events")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_source")

    op.drop_table("sync_runs")
    op.drop_table("source_state")
    with op.batch_alter_table("refills", schema=None) as batch_op:
        batch_op.drop_index("ix_refills_invoice")

    op.drop_table("refills")
    op.drop_table("meta")
    op.drop_table("leases")
    op.drop_table("invalid_records")
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index("ix_entries_source_spent_date")
        batch_op.drop_index("ix_entries_customer_status")

    op.drop_table("entries")
    op.drop_table("credentials")
