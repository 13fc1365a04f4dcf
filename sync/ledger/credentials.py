"""The `credentials` table: what the program must keep between runs (rotated OAuth refresh
tokens), sealed when an encryption key is configured."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import select

from sync.ledger import schema
from sync.ledger.database import Ledger, StoreUnavailable, utcnow
from sync.settings import Secret

if TYPE_CHECKING:  # cryptography loads only where an encryption key is configured
    from cryptography.fernet import Fernet

C = schema.credentials


class DatabaseCredentialStore:
    """`sync.ports.CredentialStore` over the `credentials` table.

    With `encryption_key` configured, values are sealed with Fernet (AES-128-CBC + HMAC) under
    a key derived from it, so a copied database file alone does not reveal a refresh token.
    """

    def __init__(self, ledger: Ledger, key: Secret | None) -> None:
        self._ledger = ledger
        self._fernet: Fernet | None = None
        if key:
            from cryptography.fernet import Fernet

            digest = hashlib.sha256(key.reveal().encode()).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def load(self, name: str) -> str | None:
        """The stored credential, or None."""
        with self._ledger.read() as conn:
            row = conn.execute(select(C.c.value, C.c.encrypted).where(C.c.name == name)).first()
        if row is None:
            return None
        value, encrypted = str(row[0]), bool(row[1])
        if not encrypted:
            return value
        if self._fernet is None:
            raise StoreUnavailable(f"credential {name} is encrypted but no encryption_key is set")
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise StoreUnavailable(
                f"credential {name} cannot be decrypted with the configured encryption_key"
            ) from None

    def save(self, name: str, value: str) -> None:
        """Store (replace) a credential and commit at once."""
        encrypted = self._fernet is not None
        stored = self._fernet.encrypt(value.encode()).decode() if self._fernet else value
        with self._ledger.begin() as conn:
            conn.execute(C.delete().where(C.c.name == name))
            conn.execute(
                C.insert().values(name=name, value=stored, encrypted=encrypted, updated_at=utcnow())
            )
