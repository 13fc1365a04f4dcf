"""Trackers and exports (the config's `sources:`): `harvest`, `toggl`, `clockify` and the CSV
exports (`csv_export`, `csv_formats`), with the helpers trackers share: `records` (raw records
into `TimeEntry`), `projects` (client names by project) and `windows` (re-read windows for
trackers without a modified-since filter)."""
