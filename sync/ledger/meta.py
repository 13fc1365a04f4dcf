"""The `meta` table: small facts about this database (its installation id, the pricing
config's fingerprint)."""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, select

from sync.ledger import schema

M = schema.meta


def get_meta(conn: Connection, key: str) -> str | None:
    """A value from the meta table."""
    value = conn.execute(select(M.c.value).where(M.c.key == key)).scalar()
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Store a value in the meta table (an upsert: replicas may write it at the same time)."""
    stmt = schema.upsert(conn, M).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def installation_id(conn: Connection) -> str:
    """A random id made once per database; part of every idempotency key we send, so two
    installations sharing one Stripe account can never replay each other's requests.
    """
    stmt = schema.upsert(conn, M).values(key="installation_id", value=secrets.token_hex(6))
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    value = get_meta(conn, "installation_id")
    assert value is not None
    return value
