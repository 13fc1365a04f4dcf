"""CSV exports as a time source: a file on disk is a full snapshot of the dates it covers, for
the clients it names (the source's `snapshot` setting: `dates_and_clients`, `dates`, `none`).
The source's `path` may name a folder or glob of such files, applied in name order, where a
later file decides the rows of its scope (`csv_files`); every file's scope is diffed only
once all of them are applied.

Exports carry no stable ids, so a row's identity is a short hash of what a person does not
edit about the work (date, user, client, project, task, start time) plus an occurrence counter
for rows that share it, in file order ("3f9c...#2"). Editing a row's hours or description is
then an update of the same entry (its `version`, a hash of the row's recognised cells,
changes), not a deletion and an addition. Each entry also names the id the previous release
derived (the description included) as its `former_id`, so the engine carries a stored entry
over to its new id instead of reversing and charging it again.
A file with an `id` column uses it as the identity; its `updated_at` column is not the version
(an edit under an unchanged stamp is still an edit), only kept with the row.

The file is streamed, never held in memory. A scan pass reads the work dates (the snapshot
window: every readable date of the file) and checks that at least one row is valid; a second
pass yields pages of up to `PAGE_SIZE` entries, every page marked as a snapshot of that window
and the last one complete, so the engine can reverse entries whose rows vanished. A file with no
valid row is never a snapshot (it would delete everything): its one page only reports the
invalid rows. The cursor is the sha256 of the file's bytes (of the names and bytes of a set
of files), so an unchanged set costs one hash per file and no page, followed by the date order
the source has proven ("<sha256> dmy"): the adapter keeps no other state, and
`date_order: auto` must remember a proof across files.
Both passes hash what they parse; a file that changes in between fails the run
before the last page, the one that completes the snapshot and carries the cursor.

Dates like 03/04/2026 are read in the source's `date_order`; in `auto`, the scan pass finds
what the file's dates prove (a day above 12), and a file whose order stays open while one of its
dates depends on it is refused whole, naming the setting: it is never guessed.

The formats and cell syntax (dates, times, durations) are described in `csv_formats`. Files are
UTF-8 (a BOM is fine) unless the source's `encoding` says otherwise, with any line ending,
separated by `,`, `;` or tab (found from the header line; with `;` or tab a decimal comma is
accepted).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from connectors.sources.csv_files import Scope, export_files, file_digest, set_digest
from connectors.sources.csv_formats import (
    DATE_ORDERS,
    FORMATS,
    BadRow,
    Dates,
    DurationLimit,
    RowFields,
    RowHead,
    RowParser,
    guess_format,
)
from connectors.sources.records import zone
from sync.model import InvalidRecord, TimeEntry
from sync.ports import ConnectorError, DateWindow, FetchRequest, Page
from sync.settings import CsvSettings

PAGE_SIZE = 5000
_SEP = "\x1f"  # joins hashed fields: a control character nobody types into a cell


class _HashingReader(io.RawIOBase):
    """Feeds every byte the CSV reader consumes into a hash, so a pass knows what it parsed."""

    def __init__(self, raw: io.BufferedReader, update: Callable[[memoryview], None]) -> None:
        super().__init__()
        self._raw = raw
        self._update = update

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._raw.readinto(view)
        self._update(view[:count])
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Pass:
    """One streaming read of the file: the header, then (line number, cells) per record."""

    def __init__(self, path: Path, encoding: str = "utf-8", setting: str = "encoding") -> None:
        self.name = path.name
        self._path, self._encoding, self._setting = path, encoding, setting
        self._digest = hashlib.sha256()
        try:
            raw = path.open("rb")
        except OSError as error:
            raise ConnectorError(f"file {path} cannot be read: {error.strerror}") from None
        hashing = io.BufferedReader(_HashingReader(raw, self._digest.update), 1 << 16)
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark that is not a header.
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        self._text = io.TextIOWrapper(hashing, encoding=codec, newline="")
        try:
            first = self._text.readline()
            while first and not first.strip():
                first = self._text.readline()
            if not first:
                raise ConnectorError(f"{self.name} is empty: an export starts with a header row")
            # The most frequent of , ; tab in the header line (ties go to the comma).
            self.delimiter = max((",", ";", "\t"), key=first.count)
            self._reader = csv.reader(
                itertools.chain([first], self._text), delimiter=self.delimiter
            )
            self.header: list[str] = next(self._reader)
        except (UnicodeDecodeError, csv.Error) as error:
            self.close()
            raise self._unreadable(error, 1) from None
        except ConnectorError:
            self.close()
            raise

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """Non-blank records with the line each starts on (a quoted cell may span lines)."""
        reader = self._reader
        last = reader.line_num
        try:
            for row in reader:
                line, last = last + 1, reader.line_num
                if any(row):
                    yield line, row
        except (UnicodeDecodeError, csv.Error) as error:
            raise self._unreadable(error, last + 1) from None

    def _unreadable(self, error: Exception, line: int) -> ConnectorError:
        if isinstance(error, UnicodeDecodeError):
            # The text layer decodes ahead of the CSV reader: find the line of the bad byte.
            line = _undecodable_line(self._path, self._encoding) or line
            return ConnectorError(
                f"{self.name} line {line} is not {self._encoding} text: save it as "
                f"{self._encoding}, or set {self._setting} to the file's encoding "
                "(e.g. cp1252 for Excel on Windows)",
                kind="config",
            )
        return ConnectorError(f"{self.name} line {line} is not valid CSV: {error}")

    def hexdigest(self) -> str:
        """sha256 of every byte read so far: all of them once `records` is exhausted."""
        return self._digest.hexdigest()

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> _Pass:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _undecodable_line(path: Path, encoding: str) -> int | None:
    """The line (1-based) holding the first byte `encoding` cannot decode, if one does."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, 1):
                try:
                    decoder.decode(raw)
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def work_id(head: RowHead) -> str:
    """A row's identity without an id column: what a person does not edit about the work
    (date, person, client, project, task, start), so an edit of its hours or description is
    a new version of the same entry. Rows that share it are told apart by their order in the
    file: the first keeps it, the next are "...#2", "...#3" (see `_Identities`).
    """
    key = _SEP.join(
        (
            head.day.isoformat(),
            head.user or "",
            head.client or "",
            head.project or "",
            head.task or "",
            head.start.isoformat() if head.start else "",
        )
    )
    return _short_hash(key)


def _former_key(head: RowHead) -> bytes:
    """The identity releases before this one gave a row: the description was part of it."""
    key = _SEP.join(
        (
            head.day.isoformat(),
            head.user or "",
            head.client or "",
            head.project or "",
            head.task or "",
            head.description,
            head.start.isoformat() if head.start else "",
        )
    )
    return hashlib.blake2b(key.encode(), digest_size=8).digest()


@dataclass(slots=True)
class _Identities:
    """Stable ids for one pass over a file. Memory is one small counter per distinct identity
    (about 100 bytes), never the rows themselves.

    Rows that share an identity (one person's two entries of a task on one day, without
    start times) are told apart by their order, never merged. That never charges what the
    file does not say: each row is one entry, so the total is the file's; and when rows swap
    places, or one before them goes, an entry's figures change and a review decision made on
    the old ones no longer applies (it is held for review again, design.md I4a). Making such
    rows invalid instead would leave ordinary work (Harvest exports have no start) unbilled.
    """

    seen: dict[str, int] = field(default_factory=dict)
    former_seen: dict[bytes, int] = field(default_factory=dict)

    def of(self, head: RowHead) -> tuple[str, str | None]:
        """The row's external id, and the id the previous release gave it (None with an id
        column: that never changed), so the ledger carries its entry over (`former_id`).
        Both count rows in file order, as the previous release did.
        """
        if head.row_id is not None:
            return head.row_id, None
        base = work_id(head)
        count = self.seen[base] = self.seen.get(base, 0) + 1
        digest = _former_key(head)
        former = self.former_seen[digest] = self.former_seen.get(digest, 0) + 1
        return (
            base if count == 1 else f"{base}#{count}",
            digest.hex() if former == 1 else f"{digest.hex()}#{former}",
        )


@dataclass(frozen=True, slots=True)
class _Scan:
    """What the scan pass learned about one file: its bytes' hash, the snapshot window, the
    date order the file is read in (None: every date it has is unambiguous), and (for
    `check_connection` only) the row counts.
    """

    path: Path
    digest: str
    window: DateWindow | None
    order: str | None
    rows: int
    invalid: int
    duplicates: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    clients: frozenset[str] | None = None

    @property
    def scope(self) -> Scope | None:
        """What the file is a complete list of, if anything."""
        return None if self.window is None else Scope(self.window, self.clients)


Proof = tuple[str, int, str]  # a date's text, its line, its file's name


@dataclass(slots=True)
class _Evidence:
    """The first date, with its line and file, that proves each order or needs one."""

    day_first: Proof | None = None
    month_first: Proof | None = None
    ambiguous: Proof | None = None

    def note(self, dates: Dates, line: int, name: str) -> None:
        """Record what `dates` learned while reading the record on `line` of file `name`."""
        if self.day_first is None and dates.day_first_proof is not None:
            self.day_first = (dates.day_first_proof, line, name)
        if self.month_first is None and dates.month_first_proof is not None:
            self.month_first = (dates.month_first_proof, line, name)
        if self.ambiguous is None and dates.ambiguous is not None:
            self.ambiguous = (dates.ambiguous, line, name)

    def add(self, other: _Evidence) -> None:
        """Evidence of the source's next file: the first proof of each kind is kept."""
        self.day_first = self.day_first or other.day_first
        self.month_first = self.month_first or other.month_first
        self.ambiguous = self.ambiguous or other.ambiguous


def split_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """The stored cursor as (digest of the files, date order the source proved before).

    The cursor is the files' digest (`csv_files.set_digest`), followed by " dmy" or " mdy"
    once a file of the source proved its date order: the adapter keeps no other state, and the
    engine stores the cursor with the page that completes the set, so only accepted files
    teach an order.
    """
    if not cursor:
        return None, None
    digest, _, order = cursor.partition(" ")
    return digest, (order if order in ("dmy", "mdy") else None)


def join_cursor(digest: str, order: str | None) -> str:
    """The cursor to store: the digest, and the proven date order when there is one."""
    return digest if order is None else f"{digest} {order}"


class CsvSource:
    """CSV exports on disk (a file, a folder or a glob), each read as a full snapshot of its
    scope (see the module docstring and `csv_files`).
    """

    def __init__(self, settings: CsvSettings) -> None:
        if settings.format not in FORMATS:
            raise ConnectorError(
                f"{settings.yaml_path}.format: unknown CSV format {settings.format!r} "
                f"(one of {', '.join(FORMATS)})",
                kind="config",
            )
        if settings.snapshot not in ("dates", "dates_and_clients", "none"):
            raise ConnectorError(
                f"{settings.yaml_path}.snapshot: unknown scope {settings.snapshot!r} "
                "(one of dates, dates_and_clients, none)",
                kind="config",
            )
        if settings.date_order not in DATE_ORDERS:
            raise ConnectorError(
                f"{settings.yaml_path}.date_order: unknown date order {settings.date_order!r} "
                f"(one of {', '.join(DATE_ORDERS)})",
                kind="config",
            )
        try:
            codecs.lookup(settings.encoding)
        except LookupError:
            raise ConnectorError(
                f"{settings.yaml_path}.encoding: unknown text encoding {settings.encoding!r}",
                kind="config",
            ) from None
        self._settings = settings
        self._format = FORMATS[settings.format]

    @property
    def name(self) -> str:
        return self._settings.name

    def check_connection(self) -> str:
        """Read every file once; say how many rows they have and how many are invalid."""
        scans, _ = self._scan(self._files(), count_invalid=True, remembered=None)
        rows, bad = sum(s.rows for s in scans), sum(s.invalid for s in scans)
        invalid = f" ({bad} invalid)" if bad else ""
        files = f" ({len(scans)} files)" if len(scans) > 1 else ""
        return f"{self._settings.file}{files}: {rows} rows{invalid}, {self._format.name} format"

    def fetch(self, request: FetchRequest) -> Iterator[Page]:
        """Every file as snapshot pages; nothing when the set is unchanged since `cursor`.

        `request.window` only forces a re-read: the files decide which dates they cover.
        """
        files = self._files()
        digest, remembered = split_cursor(request.cursor)
        unchanged = digest is not None and digest == self._set_digest(files)
        if unchanged and request.window is None:
            return
        scans, proven = self._scan(files, count_invalid=False, remembered=remembered)
        yield from self._pages(scans, proven)

    # --- passes ---------------------------------------------------------------------------

    def _scan(
        self, files: list[Path], count_invalid: bool, remembered: str | None
    ) -> tuple[list[_Scan], str | None]:
        """Scan the files in the set order; in `auto`, in the order the source has proven (by
        these files or earlier ones), or refuse the set when its dates leave it open. The
        order is the source's, not a file's: files that contradict each other are refused.
        """
        setting = self._settings.date_order
        order = setting if setting != "auto" else remembered
        scanned = [self._scan_once(path, order, count_invalid) for path in files]
        scans = [scan for scan, _ in scanned]
        if setting != "auto":
            return scans, None
        evidence = _Evidence()
        for _, found in scanned:
            evidence.add(found)
        proven = self._proven_order(evidence, remembered)
        if proven != order:
            scans = [self._scan_once(path, proven, count_invalid)[0] for path in files]
        return scans, proven

    def _proven_order(self, evidence: _Evidence, remembered: str | None) -> str | None:
        """The order the dates prove (or the source proved before), or a ConnectorError."""
        fix = f"set {self._settings.yaml_path}.date_order to dmy, mdy or ymd"
        day_first, month_first = evidence.day_first, evidence.month_first
        if day_first and month_first:
            where = f"{day_first[2]}: {day_first[0]} (line {day_first[1]})"
            other = f"{month_first[0]} (line {month_first[1]})"
            if day_first[2] != month_first[2]:
                other = f"{month_first[2]}'s {other}"
            raise ConnectorError(
                f"{where} is day first but {other} is month first; the file is not read: {fix}",
                kind="config",
            )
        proven = "dmy" if day_first else "mdy" if month_first else None
        proof = day_first or month_first
        if proven and remembered and proven != remembered and proof:
            raise ConnectorError(
                f"{proof[2]}: {proof[0]} (line {proof[1]}) is "
                f"{'day' if proven == 'dmy' else 'month'} first, but earlier files of this "
                f"source were {'day' if remembered == 'dmy' else 'month'} first; the file is "
                f"not read: {fix}",
                kind="config",
            )
        proven = proven or remembered
        if proven is None and evidence.ambiguous:
            text, line, name = evidence.ambiguous
            raise ConnectorError(
                f"{name}: {text} (line {line}) reads as day first or month first and no date "
                f"of this source proves which (a day above 12); the file is not read: {fix}",
                kind="config",
            )
        return proven

    def _scan_once(
        self, path: Path, order: str | None, count_invalid: bool
    ) -> tuple[_Scan, _Evidence]:
        rows = invalid = 0
        any_valid = False
        first = last = None
        evidence = _Evidence()
        first_line: dict[str, int] = {}
        duplicates: dict[str, tuple[int, ...]] = {}
        clients: set[str] = set()
        with self._open(path) as read:
            parser = self._parser(read, Dates(order))
            dates = parser.dates
            has_ids = "id" in parser.index
            by_client = self._settings.snapshot == "dates_and_clients" and "client" in parser.index
            for line, row in read.records():
                rows += 1
                if by_client:
                    clients.add(parser.client_of(row))
                if has_ids and (row_id := parser.row_id(row)) is not None:
                    seen = first_line.setdefault(row_id, line)
                    if seen != line:
                        duplicates[row_id] = (*duplicates.get(row_id, (seen,)), line)
                if count_invalid or not any_valid:
                    try:
                        parser.parse(row)
                        any_valid = True
                    except BadRow:
                        invalid += 1
                day = parser.day_of(row)
                if day is not None:
                    if first is None or day < first:
                        first = day
                    if last is None or day > last:
                        last = day
                evidence.note(dates, line, read.name)
            window = DateWindow(first, last) if any_valid and first and last else None
            if self._settings.snapshot == "none":
                window = None  # the file only adds and changes: a missing row deletes nothing
            covered = frozenset(clients) if by_client else None
            scan = _Scan(path, read.hexdigest(), window, order, rows, invalid, duplicates, covered)
            return scan, evidence

    def _pages(self, scans: list[_Scan], proven: str | None) -> Iterator[Page]:
        """Every file's entries in name order, then what completes each file's snapshot.

        Entry pages carry their file's window (so the engine marks their entries seen) but
        complete nothing, but the last file's last page: a file's scope is diffed only once
        every file is applied, so a row that moved to a later file is not reversed and
        charged again in one run. The other files' completions follow as pages without
        entries; the very last page carries the cursor.
        """
        cursor = join_cursor(set_digest([(s.path, s.digest) for s in scans]), proven)
        completions = [
            Page(snapshot=s.window, snapshot_complete=True, snapshot_clients=s.clients)
            for s in scans[:-1]
            if s.window is not None
        ]
        for number, scan in enumerate(scans):
            later = [s.scope for s in scans[number + 1 :] if s.scope is not None]
            final = number == len(scans) - 1
            last_cursor = cursor if final and not completions else None
            yield from self._file_pages(scan, later, final, last_cursor)
        if completions:
            yield from completions[:-1]
            yield replace(completions[-1], cursor=cursor)

    def _file_pages(
        self, scan: _Scan, later: list[Scope], final: bool, cursor: str | None
    ) -> Iterator[Page]:
        """One file's rows as pages, leaving out those a later file's scope decides. The
        last page of the `final` file completes its snapshot (and carries `cursor`).
        """
        source = self._settings.name
        identities = _Identities()
        entries: list[TimeEntry] = []
        invalid: list[InvalidRecord] = []
        with self._open(scan.path) as read:
            parser = self._parser(read, Dates(scan.order))
            header = read.header
            for line, row in read.records():
                raw: dict[str, Any] = dict(zip(header, row, strict=False))
                if len(row) > len(header):
                    raw["(cells beyond the header)"] = row[len(header) :]
                try:
                    fields = parser.parse(row)
                    head = fields.head
                    external_id, former_id = identities.of(head)
                    if later and _decided_later(later, head.day, head.client):
                        continue
                    if head.row_id in scan.duplicates:
                        raise BadRow(_duplicate(external_id, scan), head.day, head)
                except BadRow as bad:
                    if later and _decided_later(later, bad.day, parser.client_of(row)):
                        continue
                    head_id = identities.of(bad.head)[0] if bad.head else parser.row_id(row)
                    locator = f"{read.name} line {line}"
                    invalid.append(
                        InvalidRecord(source, locator, bad.reason, raw, head_id, bad.day)
                    )
                    continue
                if len(entries) == PAGE_SIZE:
                    yield Page(
                        entries=tuple(entries),
                        invalid=tuple(invalid),
                        snapshot=scan.window,
                        snapshot_clients=scan.clients,
                    )
                    entries, invalid = [], []
                entries.append(_entry(source, external_id, fields, raw, former_id))
            if read.hexdigest() != scan.digest:
                raise ConnectorError(f"{read.name} changed while being read: the next run retries")
        yield Page(
            entries=tuple(entries),
            invalid=tuple(invalid),
            cursor=cursor,
            snapshot=scan.window,
            snapshot_complete=final and scan.window is not None,
            snapshot_clients=scan.clients,
        )

    # --- the files ------------------------------------------------------------------------

    def _files(self) -> list[Path]:
        return export_files(self._settings.file, self._settings.yaml_path)

    @staticmethod
    def _set_digest(files: list[Path]) -> str:
        return set_digest([(path, file_digest(path)) for path in files])

    def _open(self, path: Path) -> _Pass:
        settings = self._settings
        if not path.is_file():
            raise ConnectorError(f"file {path} not found (check {settings.yaml_path}.path)")
        return _Pass(path, settings.encoding, f"{settings.yaml_path}.encoding")

    def _parser(self, read: _Pass, dates: Dates) -> RowParser:
        """A parser for this file's header, or a ConnectorError naming what to fix."""
        fmt, where = self._format, self._settings.yaml_path
        guessed = guess_format(read.header)
        if guessed is not None and guessed != fmt.name:
            raise ConnectorError(
                f"{read.name}: the header is a {guessed} export's, not {fmt.name} "
                f"(set {where}.format: {guessed})",
                kind="config",
            )
        limit = DurationLimit(self._settings.max_hours, f"{where}.max_hours")
        comma = read.delimiter != ","
        parser = RowParser(fmt, read.header, comma, dates, limit, zone(self._settings.timezone))
        if missing := parser.missing(fmt):
            raise ConnectorError(
                f"{read.name}: header not recognised as a {fmt.name} export: missing "
                f"{'; '.join(missing)} (check {where}.format)",
                kind="config",
            )
        return parser


def _decided_later(later: list[Scope], day: dt.date | None, client: str | None) -> bool:
    """Whether a later file's scope covers this row: then that file says what is there."""
    return any(scope.covers(day, client) for scope in later)


def _duplicate(row_id: str, scan: _Scan) -> str:
    """Why every row of a repeated id is invalid: which one is meant is not for us to pick."""
    lines = [str(line) for line in scan.duplicates[row_id]]
    if len(lines) > 5:
        listed = f"{', '.join(lines[:5])} and {len(lines) - 5} more"
    else:
        listed = f"{', '.join(lines[:-1])} and {lines[-1]}"
    return f"id {row_id!r} appears on lines {listed}: keep one row per id"


def _entry(
    source: str,
    external_id: str,
    fields: RowFields,
    raw: dict[str, Any],
    former_id: str | None = None,
) -> TimeEntry:
    head = fields.head
    return TimeEntry(
        source=source,
        external_id=external_id,
        former_id=former_id,
        version=_short_hash(_SEP.join(fields.cells)),
        spent_date=head.day,
        seconds=fields.seconds,
        billable=fields.billable,
        start=head.start,
        stop=fields.stop,
        user_id=fields.user_id,
        user_name=head.user,
        client_id=fields.client_id,
        client_name=head.client,
        project_id=fields.project_id,
        project_name=head.project,
        task_id=fields.task_id,
        task_name=head.task,
        tags=fields.tags,
        description=head.description,
        rate=fields.rate,
        rate_currency=fields.currency,
        raw=raw,
    )
