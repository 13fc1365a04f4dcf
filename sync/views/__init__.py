"""The read side: `reports` (balances, entries, postings as typed records of values),
`figures` (the counts `/metrics` reads at scrape time), `statement` (a client's
statement, built purely from postings) and its renderers, the status page, the page shell and
the SVG chart. Nothing here writes: views take a read transaction and nothing else."""
