"""prepaid-sync: everything that decides.

Vocabulary: `model` (TimeEntry, Amount, statuses, exact money in integer minor units, hours in
seconds), `settings` (the validated config as frozen records) and `config` (the YAML loader that
builds them: `config_fields` reads one field and collects errors, `config_values` converts
single values, `config_connectors` and `config_customers` read those sections). Pure decisions:
`rules` routes and values entries, no I/O. Boundaries: `ports` defines the source and sink
interfaces the adapters in `connectors/` implement; `wiring` builds those adapters from settings
and is the one module here that imports `connectors`.

The store: `schema` (tables), `ledger` (connections, transactions, leases, balances; Alembic
revisions in `migrations/`). The work: `engine` runs one sync of a source page by page (fetch ->
store -> post), reading a tracker one page ahead through `prefetch`; `posting` is the delta rule
every change of cost goes through; `books` keeps openings, re-valuation, review decisions and
top-ups in step with the config; `refill` is the threshold policy and the intent -> invoice ->
credit state machine; `crash` holds the named crash points the crash tests arm.

Faces: `app` wires one config into a ledger, rules and adapters; `cli` parses the `prepaid`
command and `commands` runs it; `reports` are the read-only views they print; `logs` makes JSON
or readable log lines with secrets scrubbed. `prepaid serve` is `service_cli` + `scheduler` +
`web` (`metrics` is the Prometheus exposition; `statement` and `statement_formats` build and
render client statements; `status_page`, `page_layout` and `chart` draw the pages and SVG charts).
"""
