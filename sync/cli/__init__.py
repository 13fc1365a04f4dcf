"""The `prepaid` command: `parser` parses and dispatches, `commands` runs each verb, `output`
shapes results as JSON and CSV, `serve` is the long-running service's entry, `logs` formats log
lines with secrets scrubbed."""

from sync.cli.parser import main, run

__all__ = ["main", "run"]
