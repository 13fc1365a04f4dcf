"""The store, and the only package that writes SQL: `database` (engine, transactions,
migrations, SQLite pragmas, leases), `schema` (the tables) and the Alembic revisions in
`migrations/`."""

from sync.ledger import schema
from sync.ledger.database import Ledger, StoreUnavailable, utcnow

__all__ = ["Ledger", "StoreUnavailable", "schema", "utcnow"]
