"""prepaid-sync: everything that decides.

The vocabulary (`model`, `settings`, `ports`) and the pure rules (`rules`) sit at the top with
the work that uses them: `engine` syncs a source, `delta` posts the difference an entry's cost
changed by, `books` keeps openings, decisions and top-ups in step, `refill` raises and credits
invoices; `app` and `wiring` put them together. The subpackages are the stages around them:
`config` (YAML in), `ledger` (the store), `views` (the read side), `service` (`prepaid serve`)
and `cli` (the `prepaid` command).
"""
