"""Postings of an entry store the client's explanation and which posting of the entry they
are, instead of a statement parsing them back out of the reason and the key.

Existing postings are filled in from what they already hold: the explanation is the reason
without its tracker label and YAML paths (what statements showed until now), the role follows
from the posting's number in its key and the entry's running sum on the budget.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 5000

# What statements stripped until this revision from a reason to show it to a client: the label
# "source:external-id (date) vVERSION: " in front and any "(customers[...])" YAML path.
_REASON_LABEL = re.compile(r"^.*? \(\d{4}-\d{2}-\d{2}\) v\S*: ")
_YAML_PATH = re.compile(r"\s*\((?:customers|sources|invoicing)\[[^)]*\)")

postings = sa.table(
    "postings",
    sa.column("id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("entry_id", sa.Integer),
    sa.column("customer_id", sa.String),
    sa.column("budget_id", sa.String),
    sa.column("unit", sa.String),
    sa.column("amount_minor", sa.BigInteger),
    sa.column("reason", sa.Text),
    sa.column("explanation", sa.Text),
    sa.column("entry_role", sa.String),
)


def upgrade() -> None:
    op.add_column("postings", sa.Column("explanation", sa.Text))
    op.add_column("postings", sa.Column("entry_role", sa.String(20)))
    conn = op.get_bind()
    p = postings
    update = (
        p.update()
        .where(p.c.id == sa.bindparam("_id"))
        .values(explanation=sa.bindparam("_explanation"), entry_role=sa.bindparam("_role"))
    )
    running: dict[tuple[int, str, str, str], int] = {}
    last_id = 0
    while True:
        rows = conn.execute(
            sa.select(
                p.c.id,
                p.c.key,
                p.c.entry_id,
                p.c.customer_id,
                p.c.budget_id,
                p.c.unit,
                p.c.amount_minor,
                p.c.reason,
            )
            .where(p.c.entry_id.is_not(None) & (p.c.id > last_id))
            .order_by(p.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        changes = []
        for pid, key, entry_id, customer, budget, unit, amount, reason in rows:
            budget_key = (int(entry_id), customer, budget, unit)
            total = running.get(budget_key, 0) + int(amount)
            running[budget_key] = total
            number = int(str(key).rsplit(":", 1)[1])
            if number == 1 and amount < 0:
                role = "charge"
            elif total == 0:
                role = "reversal"
            else:
                role = "correction"
            explanation = _YAML_PATH.sub("", _REASON_LABEL.sub("", str(reason), count=1)).strip()
            changes.append({"_id": pid, "_explanation": explanation, "_role": role})
        conn.execute(update, changes)
        last_id = int(rows[-1][0])


def downgrade() -> None:
    with op.batch_alter_table("postings") as batch:
        batch.drop_column("entry_role")
        batch.drop_column("explanation")
