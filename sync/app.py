"""The application object: one config, one ledger, the pricer and the adapters, built once.

The CLI and `prepaid serve` both drive the program through this, so a sync from the command
line and a sync from the scheduler are the same code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from sqlalchemy import Connection

from sync.books import BooksPreview, ensure_books, preview_books
from sync.engine import RunSummary, SyncEngine, process_holder
from sync.ledger import DatabaseCredentialStore, Ledger, safe_url
from sync.model import RunOutcome
from sync.ports import InvoiceSink, TimeSource
from sync.refill import RefillReport, RefillService
from sync.rules import Pricer
from sync.settings import Settings
from sync.wiring import build_sink, build_source


@dataclass
class SyncOutcome:
    """A whole `prepaid sync`: each source's summary, then the refill run."""

    runs: list[RunSummary] = field(default_factory=list)
    refills: RefillReport = field(default_factory=RefillReport)
    revalued: int = 0

    @property
    def partial(self) -> bool:
        """True when some source failed, some record was invalid, or a refill needs care."""
        return self.refills.partial or any(r.outcome != "ok" for r in self.runs)


# What a read command says on a new database (nothing is created to say it).
NO_SYNC_YET = "note: no sync has run yet: the database has no books, so there is nothing to show"


class SchemaBehind(Exception):
    """The database needs migrations a read command may not run (it never writes): exit 2."""


class Books(NamedTuple):
    """A read command's view of the books: a read transaction, and what the next sync would
    post to bring them in line with the config (see `App.reading`)."""

    conn: Connection
    preview: BooksPreview

    def pending_note(self) -> str | None:
        """What the next sync will change, for stderr; None when the books match the config."""
        p = self.preview
        if not p.pending:
            return None
        parts = []
        if p.entries:
            noun = "entry" if p.entries == 1 else "entries"
            parts.append(f"{p.entries} {noun} will be re-valued")
        if p.openings:
            parts.append(
                f"{p.openings} opening {'balance' if p.openings == 1 else 'balances'} posted"
            )
        return (
            f"note: the config changed since the last sync: {' and '.join(parts)} at the next"
            " `prepaid sync` (or `prepaid serve`); shown are the books as they stand, nothing"
            " was written (`prepaid sync --dry-run` shows the changes)"
        )


class App:
    """Everything a command needs, built lazily from the settings."""

    def __init__(self, settings: Settings, *, holder: str | None = None) -> None:
        self.settings = settings
        self.holder = holder or process_holder()
        self.ledger = Ledger(settings.database)
        self._sources: dict[str, TimeSource] = {}
        self._sinks: dict[str, InvoiceSink] | None = None

    @cached_property
    def pricer(self) -> Pricer:
        """Compiled routing and valuation rules."""
        return Pricer(self.settings.customers)

    @cached_property
    def credentials(self) -> DatabaseCredentialStore:
        """Where adapters keep rotated refresh tokens."""
        return DatabaseCredentialStore(self.ledger, self.settings.encryption_key)

    def source(self, name: str) -> TimeSource:
        """The adapter of a configured source (built once)."""
        if name not in self._sources:
            settings = self.settings.source(name)
            if settings is None:
                raise KeyError(name)
            self._sources[name] = build_source(settings)
        return self._sources[name]

    @property
    def sinks(self) -> dict[str, InvoiceSink]:
        """Every configured invoicing sink's adapter."""
        if self._sinks is None:
            self._sinks = {s.name: build_sink(s, self.credentials) for s in self.settings.invoicing}
        return self._sinks

    def prepare(self) -> int:
        """Migrate the database and bring the books in line with the config."""
        self.ledger.upgrade()
        return ensure_books(self.ledger, self.settings, self.pricer)

    @contextmanager
    def reading(self) -> Iterator[Books | None]:
        """The books for a command that only reads (`balance`, `entries`, `ledger`,
        `statement`): one read transaction, and nothing written, not even a re-valuation
        after a config change (that belongs to `sync` and `serve`, which call `prepare`); the
        command says instead what the next sync will post.

        Yields None when no sync has run yet (no tables; nothing is created): there is
        nothing to show. Raises `SchemaBehind` when the schema needs migrations.
        """
        state = self.ledger.schema_state()
        if state == "empty":
            yield None
            return
        if state == "behind":
            raise SchemaBehind(
                f"the database {safe_url(self.settings.database)} was written by an older"
                " version and needs migrating, which a read command does not do: run"
                " `prepaid db upgrade` (or the next `prepaid sync`) first"
            )
        with self.ledger.read() as conn:
            yield Books(conn, preview_books(conn, self.settings, self.pricer))

    def engine(self) -> SyncEngine:
        """A sync engine over this ledger and these rules."""
        return SyncEngine(
            self.ledger, self.pricer, timezone=self.settings.timezone, holder=self.holder
        )

    def refills(self) -> RefillService:
        """The refill policy and state machine over this ledger and these sinks."""
        return RefillService(self.ledger, self.settings, self.sinks, holder=self.holder)

    def sync(
        self,
        *,
        source: str | None = None,
        since: dt.date | None = None,
        full: bool = False,
        dry_run: bool = False,
        progress: Callable[[str, int], None] | None = None,
        accept_deletions: bool = False,
    ) -> SyncOutcome:
        """Pull every source (or one), post, then run refills and poll open ones.
        `accept_deletions` is the operator's confirmation of a mass deletion the deletion
        guard would refuse (`sync --full --accept-deletions`)."""
        names = [source] if source else [s.name for s in self.settings.sources]
        outcome = SyncOutcome()
        if dry_run:
            self.ledger.upgrade()  # the schema itself is not data: a fresh file gets it
            with self.ledger.dry_run():
                outcome.revalued = ensure_books(self.ledger, self.settings, self.pricer)
                self._sync_sources(outcome, names, since, full, progress, accept_deletions)
                outcome.refills = self.refills().run(dry_run=True)
            return outcome
        outcome.revalued = self.prepare()
        self._sync_sources(outcome, names, since, full, progress, accept_deletions)
        outcome.refills = self.refills().run()
        return outcome

    def _sync_sources(
        self,
        outcome: SyncOutcome,
        names: list[str],
        since: dt.date | None,
        full: bool,
        progress: Callable[[str, int], None] | None,
        accept_deletions: bool = False,
    ) -> None:
        engine = self.engine()
        for name in names:
            settings = self.settings.source(name)
            assert settings is not None
            tick = None if progress is None else (lambda n, _name=name: progress(_name, n))
            try:
                adapter = self.source(name)
            except Exception as exc:  # a broken adapter fails its source, not the run
                outcome.runs.append(
                    RunSummary(source=name, outcome=RunOutcome.FAILED, error=str(exc))
                )
                continue
            outcome.runs.append(
                engine.sync(
                    adapter,
                    settings,
                    since=since,
                    full=full,
                    progress=tick,
                    accept_deletions=accept_deletions,
                )
            )
