"""One normalized snapshot per stack: any template change shows up in review.
Update with `pytest --snapshot-update` after checking the diff."""

from __future__ import annotations

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import normalize_template


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_stack_snapshots(synth, snapshot_json):
    for name in sorted(synth.templates):
        assert normalize_template(synth.templates[name]) == snapshot_json(name=name)
