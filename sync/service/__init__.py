"""What `prepaid serve` runs besides the command line: `scheduler` (the cron jobs, claimed per
tick so replicas share the work), `web` (health, metrics, webhooks, status page, statements)
and `metrics` (the Prometheus figures)."""
