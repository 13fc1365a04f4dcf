"""A refill remembers the total its invoice asks for, tax included (`invoice_total_minor`), as
the sink reports it: a payment is compared with that total, not with the net amount the budget
is credited, so a taxed invoice paid in part is recognised as such.

Refills recorded before this revision have no total until the sink next reports one; until
then the net amount stands in for it, as it did.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice_total_minor", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refills", schema=None) as batch_op:
        batch_op.drop_column("invoice_total_minor")
