"""Index postings by budget and unit, so the unit check on every run is a seek, not a scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("postings") as batch:
        batch.drop_index("ix_postings_budget")
        batch.create_index("ix_postings_budget_unit", ["customer_id", "budget_id", "unit"])


def downgrade() -> None:
    with op.batch_alter_table("postings") as batch:
        batch.drop_index("ix_postings_budget_unit")
        batch.create_index("ix_postings_budget", ["customer_id", "budget_id"])
