"""Which files a CSV source reads, and the digest that says the set is unchanged.

A source's `path` names one file, a folder (its `*.csv` files) or a glob
(`exports/2026-*.csv`). Several files are applied in name order, each a snapshot of its own
scope: where a later file's scope covers a row of an earlier one, the later file decides (an
export re-saved under a newer name replaces the older one for the dates and clients it
covers), and a file that is not there any more covers nothing, so it reverses nothing.

The cursor must stay cheap for an unchanged set: it is one sha256 over the files' names and
bytes (for a single file, the file's own sha256, as before folders were allowed, so existing
cursors stay valid). A change in any file, or a file added, removed or renamed, re-reads the
whole set: scopes may overlap, so which file decides a row is only known from all of them.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sync.ports import ConnectorError, DateWindow

_GLOB = frozenset("*?[")


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes: cheap enough to decide that nothing changed."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as error:
        raise ConnectorError(f"file {path} cannot be read: {error.strerror}") from None
    return digest.hexdigest()


def set_digest(files: list[tuple[Path, str]]) -> str:
    """One digest for (file, sha256) pairs in name order; a single file's is its own."""
    if len(files) == 1:
        return files[0][1]
    combined = hashlib.sha256()
    for path, digest in files:
        combined.update(f"{path}\x1f{digest}\n".encode())
    return combined.hexdigest()


def is_pattern(path: Path) -> bool:
    """A glob rather than a file name (a file that exists under that name is a file)."""
    return bool(_GLOB.intersection(str(path))) and not path.exists()


def export_files(path: Path, where: str) -> list[Path]:
    """The files `path` names, in name order, or a ConnectorError that says what to fix.

    A folder or glob without files is an error of this source only (like a missing file):
    nothing is read and nothing reversed, other sources sync as usual.
    """
    if is_pattern(path):
        found = sorted(Path(name) for name in glob.glob(str(path)) if Path(name).is_file())
        if not found:
            raise ConnectorError(
                f"no file matches {path} ({where}.path): nothing read, nothing reversed",
                kind="config",
            )
        return found
    if path.is_dir():
        found = sorted(
            child
            for child in path.iterdir()
            if child.suffix.lower() == ".csv" and not child.name.startswith(".") and child.is_file()
        )
        if not found:
            raise ConnectorError(
                f"folder {path} has no .csv file ({where}.path): nothing read, nothing reversed",
                kind="config",
            )
        return found
    if not path.is_file():
        raise ConnectorError(f"file {path} not found (check {where}.path)", kind="config")
    return [path]


@dataclass(frozen=True, slots=True)
class Scope:
    """What one file is a complete list of: its dates, for its clients (None: every client)."""

    window: DateWindow
    clients: frozenset[str] | None

    def covers(self, day: dt.date | None, client: str | None) -> bool:
        """Whether a row of this day and client ("" or None: no client) falls in the scope."""
        if day is None or not self.window.start <= day <= self.window.end:
            return False
        return self.clients is None or (client or "") in self.clients
