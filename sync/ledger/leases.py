"""The `leases` table: who may do a piece of exclusive work (a source's sync, a budget's
refill, a scheduler tick) until when.

A lease row (not a session lock) survives pooled connections and expires by itself when its
holder dies, so a killed replica never blocks the others for long. `Ledger.acquire_lease` and
its siblings run these in a transaction of their own.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import secrets
import socket
from pathlib import Path

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

    With `take_from_dead`, a lease whose holder was killed on this host, in this PID namespace,
    is taken over at once;
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


# --- who holds a lease ---------------------------------------------------------------------
#
# A holder is "host:pid:namespace:token". Host and pid alone collide: replicas in containers on
# the host network share the host name and each is PID 1, so both would take the same lease and
# sync every tick. The token, drawn once per process, makes each holder unique; the namespace
# (a digest of the kernel's boot id and the PID namespace's inode) says whether a pid can be
# looked up from here at all.

_token: tuple[int, str] = (0, "")


def process_holder() -> str:
    """This process's holder name, unique among all processes that share a database."""
    global _token
    pid = os.getpid()
    if _token[0] != pid:  # first call, or a forked child: a token of its own
        _token = (pid, secrets.token_hex(6))
    return make_holder(pid, _token[1])


def make_holder(pid: int, token: str) -> str:
    """The holder name of process `pid` of this host and PID namespace."""
    return f"{socket.gethostname()}:{pid}:{pid_namespace()}:{token}"


@functools.cache
def pid_namespace() -> str:
    """A short id of this process's PID namespace on this boot of this kernel, or "-" where
    the system does not say (then no holder is ever judged dead by its pid).

    The inode of /proc/self/ns/pid tells namespaces apart on one kernel; the boot id tells
    kernels (machines, reboots) apart, since two hosts may share a name.
    """
    try:
        inode = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "-"
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return hashlib.blake2b(f"{boot}/{inode}".encode(), digest_size=5).hexdigest()


def _holder_is_dead(holder: str) -> bool:
    """True only when `holder` is a process of this host, in this PID namespace, that no
    longer exists; a holder from elsewhere (another container, machine, or an older format) is
    never judged by its pid, only by its lease's expiry.
    """
    parts = holder.split(":")
    if len(parts) != 4:
        return False
    host, pid, namespace, _token_of_holder = parts
    if host != socket.gethostname() or namespace in ("-", "") or namespace != pid_namespace():
        return False
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return holder != process_holder()  # our pid, another token: its process is gone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
