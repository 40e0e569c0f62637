"""Shared fixtures. Every test gets its own RADVIEW_HOME; the GUI runs offscreen."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Two cores on CI: keep torch from oversubscribing when several things run.
os.environ.setdefault("OMP_NUM_THREADS", "2")

from radview import torch_env  # noqa: E402

torch_env.lean_import()  # tests import torch as the app does: without triton (radview/torch_env.py)

# ../shared/data beside the project; RADVIEW_SHARED_DATA overrides it (as for radview.io.samples):
# `RADVIEW_SHARED_DATA=/nonexistent scripts/test` runs the suite as a fresh clone without it.
SHARED_DATA = (Path(os.environ["RADVIEW_SHARED_DATA"]) if os.environ.get("RADVIEW_SHARED_DATA")
               else Path(__file__).resolve().parent.parent.parent / "shared" / "data")


def pytest_collection_modifyitems(config, items):
    """Tests that use ../shared/data (the shared_data fixture, directly or through another
    fixture) get the `shared` marker, so `-m "not shared"` runs what a fresh clone can."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


@pytest.fixture(autouse=True)
def radview_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("radview_home")
    monkeypatch.setenv("RADVIEW_HOME", str(home))
    return home


@pytest.fixture
def sqlite_store(tmp_path):
    """A label store in a SQLite file of the test's own (reader alice), closed afterwards."""
    from radview.store import LabelStore

    s = LabelStore(tmp_path / "labels.sqlite", reader="alice")
    yield s
    s.close()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real data beside the project); skips where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs real data in {SHARED_DATA} (absent on this machine)")
    return SHARED_DATA


def testdata_file(name: str) -> str:
    """A file from pydicom's test data / pydicom-data, without any download attempt."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed (pydicom-data missing?)")
    return str(path)


@pytest.fixture
def testdata():
    return testdata_file


@pytest.fixture(scope="session")
def radiographs(tmp_path_factory):
    """Real-enough radiographs made from the public samples pydicom-data ships (no ../shared
    needed): see tests/fixtures/radiographs.py."""
    from tests.fixtures.radiographs import make_radiographs

    return make_radiographs(tmp_path_factory.mktemp("radiographs"))
