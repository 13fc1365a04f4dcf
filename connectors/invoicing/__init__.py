"""Invoicing sinks (the config's `invoicing:`): `stripe`, `xero`, `quickbooks`, and `outbox`
(invoice files in a folder, the embedded default). Each implements `sync.ports.InvoiceSink`."""
