"""The one HTTP layer every adapter is built on (as dlt's `rest_client`): `client` (session,
timeouts, the request loop), `errors` (the status table), `retries` (the one tenacity loop),
`auth` (auth objects and the secret redactor), `oauth` (refresh-token rotation) and `paging`."""
