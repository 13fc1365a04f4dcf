"""Lease holders: unique per process, and taken over early only from a process known dead.

Found by the container smoke test: replicas on the host network share the host name and each
is PID 1, so `host:pid` holders collided and both replicas synced every tick.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import socket

import pytest

from sync.engine import process_holder
from sync.ledger import Ledger
from sync.ledger.leases import _holder_is_dead, make_holder, pid_namespace

GONE = os.getpid() + 10_000_000  # beyond any pid: no such process
TTL = dt.timedelta(minutes=5)


def _report_holder(queue: multiprocessing.Queue[str]) -> None:
    queue.put(process_holder())


def test_a_holder_is_stable_in_a_process_and_differs_in_another() -> None:
    holder = process_holder()
    assert holder == process_holder()
    host, pid, namespace, token = holder.split(":")
    assert (host, pid, namespace) == (socket.gethostname(), str(os.getpid()), pid_namespace())
    assert len(token) == 12
    queue: multiprocessing.Queue[str] = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_report_holder, args=(queue,))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) not in ("", holder)


def test_two_processes_with_one_host_name_and_pid_hold_distinct_names() -> None:
    """Two containers' PID 1 on the host network: same host and pid, different tokens."""
    assert make_holder(1, "aaaaaaaaaaaa") != make_holder(1, "bbbbbbbbbbbb")


@pytest.mark.skipif(pid_namespace() == "-", reason="no /proc: PID namespaces are unknown")
def test_a_dead_pid_is_judged_dead_only_in_this_host_and_namespace() -> None:
    host, _, namespace, _ = process_holder().split(":")
    assert _holder_is_dead(make_holder(GONE, "feedfacecafe"))
    # Another PID namespace (another container) or another host: its pids mean nothing here.
    assert not _holder_is_dead(f"{host}:{GONE}:0000000000:feedfacecafe")
    assert not _holder_is_dead(f"other-host:{GONE}:{namespace}:feedfacecafe")
    # The old `host:pid` form says nothing of its namespace: only expiry frees it.
    assert not _holder_is_dead(f"{host}:{GONE}")
    # A live process, or this one under its own name, is alive.
    assert not _holder_is_dead(make_holder(os.getppid(), "feedfacecafe"))
    assert not _holder_is_dead(process_holder())
    # Our pid under another token: the process that had this pid before us is gone.
    assert _holder_is_dead(make_holder(os.getpid(), "feedfacecafe"))


def test_a_lease_of_another_namespace_waits_for_expiry(db_url: str) -> None:
    ledger = Ledger(db_url)
    ledger.upgrade()
    host = socket.gethostname()
    elsewhere = f"{host}:{GONE}:0000000000:feedfacecafe"  # a dead pid, but not in our namespace
    assert ledger.acquire_lease("source:x", elsewhere, TTL) is None
    assert ledger.acquire_lease("source:x", process_holder(), TTL) == elsewhere
    if pid_namespace() != "-":
        dead_here = make_holder(GONE, "feedfacecafe")
        assert ledger.acquire_lease("source:y", dead_here, TTL) is None
        assert ledger.acquire_lease("source:y", process_holder(), TTL) is None  # taken over
