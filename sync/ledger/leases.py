"""The `leases` table: who may do a piece of exclusive work (a source's sync, a budget's
refill, a scheduler tick) until when.

A lease row (not a session lock) survives pooled connections and expires by itself when its
holder dies, so a killed replica never blocks the others for long. `Ledger.acquire_lease` and
its siblings run these in a transaction of their own.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from sqlalchemy import Connection, select

from sync.ledger import schema

L = schema.leases


def acquire(
    conn: Connection,
    name: str,
    holder: str,
    now: dt.datetime,
    ttl: dt.timedelta,
    *,
    take_from_dead: bool = True,
) -> str | None:
    """Take or renew the lease `name` for `holder`; None on success, else the holder.

    With `take_from_dead`, a lease whose holder was killed on this host is taken over at once;
    a claim that must stand even then (a tick its holder may have finished) passes False.
    """
    stmt = schema.upsert(conn, L).values(name=name, holder=holder, expires_at=now + ttl)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": holder, "expires_at": now + ttl},
        where=(L.c.holder == holder) | (L.c.expires_at < now),
    )
    conn.execute(stmt)
    current = str(conn.execute(select(L.c.holder).where(L.c.name == name)).scalar_one())
    if current != holder and take_from_dead and _holder_is_dead(current):
        # The holder was killed on this very host: no need to wait for expiry.
        conn.execute(
            L.update()
            .where((L.c.name == name) & (L.c.holder == current))
            .values(holder=holder, expires_at=now + ttl)
        )
        current = holder
    return None if current == holder else current


def drop_expired(conn: Connection, prefix: str, now: dt.datetime) -> None:
    """Delete expired leases whose names start with `prefix`."""
    conn.execute(
        L.delete().where(L.c.name.startswith(prefix, autoescape=True) & (L.c.expires_at < now))
    )


def release(conn: Connection, name: str, holder: str) -> None:
    """Delete the lease if `holder` still has it."""
    conn.execute(L.delete().where((L.c.name == name) & (L.c.holder == holder)))


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
