"""The read side: `reports` (balances, entries, postings as values), `statement` (a client's
statement, built purely from postings) and its renderers, the status page, the page shell and
the SVG chart. Nothing here writes: views take a read transaction and nothing else."""
