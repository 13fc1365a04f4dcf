"""Everything that talks to the outside world: trackers (sources) and invoicing (sinks).

Each module implements a `sync.ports` protocol and imports only `sync.model`, `sync.settings` and
`sync.ports` from the core. `http` is the one shared HTTP layer (timeouts, retries with
Retry-After, error classification, redaction) every HTTP adapter is built on; its parts are
`retries` (the one retry loop), `http_errors` (the status table), `auth` and `paging`.
"""
