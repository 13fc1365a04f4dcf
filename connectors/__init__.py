"""Everything that talks to the outside world, one package per section of the config file:
`sources` (trackers and CSV exports), `invoicing` (the sinks), both built on the one HTTP
layer in `http`. Connectors import only `sync.model`, `sync.settings`, `sync.ports` and
`sync.redaction`; each is registered by its `type` in `sync.config.connectors`."""
