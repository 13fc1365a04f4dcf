"""Project and client names for trackers whose entries carry only a project id (Toggl, Clockify).

Routing rules match on client ids and names, so an entry needs its project's client. Looking
projects up costs requests against small quotas, so a `ProjectDirectory` loads a workspace's
projects at most once per run, and only when an entry of that run names a project it does not
know yet; a run whose entries reference no project makes no such request at all. Nothing is
kept between runs: a project moved to another client must route by its new client at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.http import HttpClient, PageRequest, Paginator, paginate
from connectors.sources.records import items_of
from sync.model import TimeEntry


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """What an entry borrows from its project."""

    name: str | None = None
    client_id: str | None = None
    client_name: str | None = None


# Loads the projects of a workspace; receives the project ids the run needs (so a loader can
# skip its clients request when none of those projects has a client).
ProjectLoader = Callable[[str, frozenset[str]], Mapping[str, ProjectInfo]]


class ProjectDirectory:
    """Per-run cache of project -> client names, filled lazily by a loader."""

    def __init__(self, load: ProjectLoader) -> None:
        self._load = load
        self._known: dict[str, Mapping[str, ProjectInfo]] = {}

    def new_run(self) -> None:
        """Forget everything: names are read fresh once per run."""
        self._known.clear()

    def enrich(
        self, entries: Iterable[TimeEntry], workspace_of: Callable[[TimeEntry], str]
    ) -> list[TimeEntry]:
        """The entries with project name and client filled in where the project is known."""
        entries = list(entries)
        wanted: dict[str, set[str]] = {}
        for entry in entries:
            if entry.project_id and not entry.deleted:
                wanted.setdefault(workspace_of(entry), set()).add(entry.project_id)
        for workspace, ids in wanted.items():
            if workspace not in self._known:
                self._known[workspace] = self._load(workspace, frozenset(ids))
        return [self._fill(entry, workspace_of) for entry in entries]

    def _fill(self, entry: TimeEntry, workspace_of: Callable[[TimeEntry], str]) -> TimeEntry:
        if not entry.project_id or entry.deleted:
            return entry
        info = self._known.get(workspace_of(entry), {}).get(entry.project_id)
        if info is None:
            return entry
        return dataclasses.replace(
            entry,
            project_name=entry.project_name or info.name,
            client_id=entry.client_id or info.client_id,
            client_name=entry.client_name or info.client_name,
        )


@dataclass(frozen=True, slots=True)
class ProjectListing:
    """Where a tracker lists its projects and clients, and which fields link them.

    `clients` is None when the project records already carry `client_name_key`; a paginator of
    None means one unpaged request.
    """

    projects: PageRequest
    projects_pages: Paginator | None
    client_keys: tuple[str, ...]
    client_name_key: str | None = None
    clients: PageRequest | None = None
    clients_pages: Paginator | None = None


def load_projects(
    http: HttpClient, listing: ProjectListing, wanted: frozenset[str]
) -> dict[str, ProjectInfo]:
    """Every project of a workspace; clients are listed only when a wanted project has a
    client whose name its project record does not carry.
    """
    projects: dict[str, ProjectInfo] = {}
    for project in _records(http, listing.projects, listing.projects_pages):
        client = next((project[k] for k in listing.client_keys if project.get(k)), None)
        name = project.get(listing.client_name_key) if listing.client_name_key else None
        projects[str(project["id"])] = ProjectInfo(
            name=_name(project.get("name")),
            client_id=None if client is None else str(client),
            client_name=_name(name),
        )
    nameless = [p for p in wanted if p in projects and projects[p].client_id]
    if listing.clients is None or all(projects[p].client_name for p in nameless) or not nameless:
        return projects
    clients = {
        str(c["id"]): _name(c.get("name"))
        for c in _records(http, listing.clients, listing.clients_pages)
    }
    return {
        pid: dataclasses.replace(info, client_name=info.client_name or clients.get(info.client_id))
        if info.client_id
        else info
        for pid, info in projects.items()
    }


def _records(
    http: HttpClient, first: PageRequest, pages: Paginator | None
) -> Iterator[Mapping[str, Any]]:
    """The objects with an id of a listing (paged or not); anything else is skipped."""
    answers = (
        (p.payload for p in paginate(http, first, pages))
        if pages is not None
        else iter([http.get_json(first.path, first.params)])
    )
    for answer in answers:
        for item in items_of(answer, None, f"{http.name}: {first.path}"):
            if isinstance(item, dict) and item.get("id") not in (None, ""):
                yield item


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
