"""Keep what a sink reports as paid so far on each refill, so a partly paid invoice shows as
such (it is credited only when paid in full).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_paid_minor", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refills", schema=None) as batch_op:
        batch_op.drop_column("amount_paid_minor")
