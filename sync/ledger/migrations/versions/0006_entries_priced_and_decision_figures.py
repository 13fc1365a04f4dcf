"""A review decision names what it decides (I4a): the budget and the priced figures (billed
seconds, rate, amount) it was made on, and each entry caches the name of its current figures
(`priced`, what `entries` shows as the version and `approve ID@VERSION` takes).

Decisions recorded before this revision keep applying as they did (no figures: an approval
covers the tracker version it was made on, an exclusion sticks). The pricing fingerprint is
forgotten so the next `sync` re-values every entry once, at unchanged amounts, and fills
`priced`: a budget switched from `auto` to `review` then keeps the work it already charged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("priced", sa.String(16)),
    ("decision_customer", sa.String(100)),
    ("decision_budget", sa.String(100)),
    ("decision_unit", sa.String(10)),
    ("decision_seconds", sa.BigInteger()),
    ("decision_rate", sa.String(40)),
    ("decision_amount", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("entries", schema=None) as batch_op:
        for name, type_ in _COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    meta = sa.table("meta", sa.column("key", sa.String))
    op.get_bind().execute(meta.delete().where(meta.c.key == "pricing_fingerprint"))


def downgrade() -> None:
    with op.batch_alter_table("entries", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
