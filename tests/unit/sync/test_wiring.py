"""The connector registry: one entry per `type`, and wiring builds whatever an entry names."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest

from sync.config.connectors import SINK_KINDS, SOURCE_KINDS, SinkKind, SourceKind
from sync.settings import Secret, SinkType, SourceType, TogglSettings
from sync.wiring import adapter, build_source


def test_the_registry_has_exactly_one_entry_per_type() -> None:
    assert tuple(SOURCE_KINDS) == get_args(SourceType)
    assert tuple(SINK_KINDS) == get_args(SinkType)


@pytest.mark.parametrize("kind", [*SOURCE_KINDS.values(), *SINK_KINDS.values()])
def test_every_entry_names_an_adapter_and_allows_its_settings_fields(
    kind: SourceKind | SinkKind,
) -> None:
    assert callable(adapter(kind.adapter))
    fields = {f.name for f in dataclasses.fields(kind.settings)} - {"yaml_path"}
    if kind in SOURCE_KINDS.values():
        fields -= {"timezone"}  # copied from the top-level timezone, not a key of the source
    assert set(kind.yaml_keys()) == {kind.renamed.get(name, name) for name in fields}


def test_a_renamed_field_is_allowed_under_its_yaml_key_only() -> None:
    assert (
        "path" in SOURCE_KINDS["csv"].yaml_keys() and "file" not in SOURCE_KINDS["csv"].yaml_keys()
    )
    assert (
        "path" in SINK_KINDS["outbox"].yaml_keys()
        and "folder" not in SINK_KINDS["outbox"].yaml_keys()
    )


def test_wiring_builds_the_adapter_the_registry_names() -> None:
    token = Secret("token-1234")
    settings = TogglSettings(yaml_path="sources[0]", name="t", type="toggl", token=token)
    assert type(build_source(settings)).__name__ == "TogglSource"


def test_an_adapter_outside_the_connectors_package_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the connectors package"):
        adapter("os:system")
