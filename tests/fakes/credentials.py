"""An in-memory `sync.ports.CredentialStore` that remembers every save, in order."""

from __future__ import annotations


class MemoryCredentials:
    """Credentials kept in a dict; `saves` lists every (name, value) saved, in order."""

    def __init__(self, **initial: str) -> None:
        self.values: dict[str, str] = dict(initial)
        self.saves: list[tuple[str, str]] = []

    def load(self, name: str) -> str | None:
        return self.values.get(name)

    def save(self, name: str, value: str) -> None:
        self.values[name] = value
        self.saves.append((name, value))
