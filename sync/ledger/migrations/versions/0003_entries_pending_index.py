"""Index only the entries waiting for review, instead of every entry by customer and status.

The balance and the status page look up pending entries; nothing queried the full
(customer_id, status) index, and keeping it up to date cost a tenth of a large sync's inserts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_entries_customer_status", table_name="entries")
    op.create_index(
        "ix_entries_pending",
        "entries",
        ["customer_id", "budget_id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_entries_pending", table_name="entries")
    op.create_index("ix_entries_customer_status", "entries", ["customer_id", "status"])
