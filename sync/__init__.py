"""prepaid-sync: everything that decides.

`model` holds the vocabulary (TimeEntry, Amount, statuses) and exact money; `settings` the
validated config as frozen records and `config` the YAML loader that builds them; `rules` routes
and values entries (pure, no I/O); `ports` defines the source and sink interfaces the adapters in
`connectors/` implement; `ledger` is the append-only store (SQLAlchemy Core, SQLite or
PostgreSQL, Alembic migrations in `migrations/`); `engine` runs one sync of a source (fetch ->
store -> post the delta); `refill` is the threshold policy and the intent -> invoice -> credit
state machine; `wiring` builds adapters from settings (the one place that imports
`connectors`); `cli` is the `prepaid` command; `scheduler` and `web` make `prepaid serve`
(`service_cli` registers `serve` and `statement`; `metrics` is the Prometheus exposition;
`statement` builds client statements and `statement_formats` renders them; `status_page`,
`page_layout` and `chart` draw the HTML pages and their SVG charts).
"""
