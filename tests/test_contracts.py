"""The architecture contracts in pyproject.toml ([tool.importlinter]) hold, and they bite: the same
contracts run on a small package that breaks each of them report every break, and nothing else."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [str(LINT), "--no-cache", "--no-logo"] + ([str(config)] if config else [])
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_code_keeps_every_contract():
    proc = _lint(REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"lint-imports found broken contracts:\n{out}"
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 3
    for c in contracts:
        assert f"{c['name']} KEPT" in out, out


FAKE = {  # a package shaped like radview, with one break of each contract
    "__init__.py": "",
    "types.py": "",
    "io/__init__.py": "from rvfake import types\nfrom rvfake.store import db\n",  # io -> store
    "store/__init__.py": "",
    "store/db.py": "import PySide6\n",                                          # core -> Qt
    "gui/__init__.py": "import PySide6\nimport superqt\nimport shiboken6\nfrom rvfake import models\n",
    "gui/canvas.py": "from PySide6 import QtWidgets\nfrom rvfake.gui import theme\n",
    "gui/theme.py": "from superqt import QLabeledSlider\n",
    "cli/__init__.py": "",
    "cli/gui.py": "def run():\n    from rvfake.gui import canvas\n",          # allowed
    "cli/scan.py": "def run():\n    import rvfake.gui.theme\n",                # nobody else imports gui
    "models/__init__.py": "import torch\nimport torchvision\n",                # allowed
    "train/__init__.py": "from torch import nn\n",                             # allowed
    "review/__init__.py": "import torch\n",                                    # torch outside models/train
    "export.py": "from rvfake import models\n",                                # indirect torch: allowed
}


def test_the_contracts_catch_each_break(tmp_path):
    text = (REPO / "pyproject.toml").read_text()
    section = text[text.index("[tool.importlinter]"):]
    section = section[:m.start()] if (m := re.search(r"^\[(?!\[?tool\.importlinter)", section, re.M)) else section
    (tmp_path / "contracts.toml").write_text(section.replace("radview", "rvfake"))
    for rel, body in FAKE.items():
        f = tmp_path / "rvfake" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(body)
    proc = _lint(tmp_path, tmp_path / "contracts.toml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    for name in ("core never imports Qt", "io imports neither store", "gui is imported by nobody but cli.gui",
                 "torch is imported directly only in models and train"):
        assert re.search(re.escape(name) + r".* BROKEN", out), f"{name!r} not broken:\n{out}"
    for chain in ("rvfake.store.db -> PySide6", "rvfake.io -> rvfake.store.db", "rvfake.cli.scan -> rvfake.gui.theme",
                  "rvfake.review -> torch"):
        assert chain in out, f"{chain} not reported:\n{out}"
    # the allowed imports are not reported
    for allowed in ("rvfake.gui -> PySide6", "rvfake.gui.theme -> superqt", "rvfake.cli.gui ->",
                    "rvfake.models -> torch", "rvfake.train -> torch", "rvfake.export ->"):
        assert f"-   {allowed}" not in out, f"{allowed} reported:\n{out}"


def test_tests_using_shared_data_carry_the_shared_marker():
    """`-m "not shared"` leaves out exactly the tests that need ../shared/data (the conftest marks
    every test that uses the shared_data fixture, directly or through another fixture)."""
    def collect(marker: str) -> set[str]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               "-m", marker, "tests/test_io_raster.py", "tests/test_models_cli.py"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {ln.split("::")[-1] for ln in proc.stdout.splitlines() if "::" in ln}

    shared, rest = collect("shared"), collect("not shared")
    assert "test_real_openi_pngs_load" in shared  # uses shared_data directly
    assert "test_predict_csv_columns_rows_and_errors" in shared  # through its `folder` fixture, no decorator
    assert {"test_overlay_pieces", "test_render_overlay_cam_on_a_shrunk_display"} <= rest
    assert not shared & rest
