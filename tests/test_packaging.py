"""A wheel built from the repo carries the bundled resources: installed in a fresh venv (offline:
the venv borrows this venv's dependencies through a .pth file and gets the wheel with
`pip install --no-deps`), it lists the bundled models with their weights installed, finds its
icons and style sheet, and opens the app offscreen for a screenshot.

The wheel is built the way `python -m build` does it: sdist first (MANIFEST.in), then the wheel
from the unpacked sdist, through setuptools' PEP 517 hooks."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _repo_files() -> list[Path]:
    """The files a fresh clone would have once the work tree is committed (tracked + untracked,
    not ignored), relative to the repo; without git, the tree minus the usual clutter."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, check=True).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache"}
        names = [str(p.relative_to(REPO)) for p in REPO.rglob("*")
                 if p.is_file() and not (set(p.relative_to(REPO).parts) & skip)]
    return [Path(n) for n in names if (REPO / n).is_file()]


def _run(cmd: list[str], cwd: Path, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    env.update(RADVIEW_HOME=str(home), QT_QPA_PLATFORM="offscreen", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    env = _clean_env(tmp / "home")
    # 1. a copy of the repo's files (building in the shared checkout would write build/ there)
    src = tmp / "src"
    for rel in _repo_files():
        if rel.parts[0] in ("tests", "scripts") or rel.parts[:2] == ("resources", "screenshots"):
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    # 2. sdist, unpacked, then the wheel from it
    dist = tmp / "dist"
    hook = "import sys; from setuptools import build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    sdist = _run([sys.executable, "-c", hook, "build_sdist", str(dist)], src, env).stdout.strip().splitlines()[-1]
    with tarfile.open(dist / sdist) as tf:
        tf.extractall(tmp / "unpacked", filter="data")
    unpacked = next((tmp / "unpacked").iterdir())
    wheel = _run([sys.executable, "-c", hook, "build_wheel", str(dist)], unpacked, env).stdout.strip().splitlines()[-1]
    # 3. a fresh venv with the wheel; dependencies borrowed from this venv (offline)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(dist / wheel)], tmp, env)
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp, env)
                .stdout.strip())
    (site / "_radview_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run_dir = tmp / "run"  # not the checkout: nothing can come from there
    run_dir.mkdir()
    return {"venv": venv, "py": py, "site": site, "env": env, "cwd": run_dir, "tmp": tmp,
            "wheel": dist / wheel}


def test_wheel_carries_resources_and_not_the_screenshots(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert "radview/_resources/style/dark.qss" in names
    for svg in (REPO / "resources" / "icons").glob("*.svg"):
        assert f"radview/_resources/icons/{svg.name}" in names
    for manifest in (REPO / "resources" / "models").glob("*/manifest.json"):
        assert f"radview/_resources/models/{manifest.parent.name}/manifest.json" in names
    assert not any("screenshots" in n for n in names)


def test_installed_package_uses_its_own_resources(installed):
    out = _run([str(installed["py"]), "-c",
                "import radview, radview.paths as p; print(radview.__file__); print(p.resources_dir())"],
               installed["cwd"], installed["env"]).stdout.split()
    pkg, res = Path(out[0]), Path(out[1])
    assert pkg.is_relative_to(installed["site"]), pkg
    assert res == installed["site"] / "radview" / "_resources"


def test_installed_models_list_has_the_bundled_models_with_weights(installed):
    radview = installed["venv"] / "bin" / "radview"
    got = json.loads(_run([str(radview), "models", "list", "--json"], installed["cwd"], installed["env"]).stdout)
    # the same list as the checkout's (same RADVIEW_HOME-free view: an empty user data folder)
    env = _clean_env(installed["tmp"] / "home-checkout")
    want = json.loads(_run([sys.executable, "-m", "radview", "models", "list", "--json"], REPO, env).stdout)
    bundled = {m["name"]: m["installed"] for m in want if m["source"] == "bundled"}
    assert any(bundled.values()), "the checkout has no bundled model with weights"
    assert {m["name"]: m["installed"] for m in got if m["source"] == "bundled"} == bundled
    for m in got:
        assert Path(m["folder"]).is_relative_to(installed["site"]), m
    installed_names = {m["name"] for m in got if m["installed"]}
    text = _run([str(radview), "models", "list"], installed["cwd"], installed["env"]).stdout
    for line in text.splitlines():
        name = line.split()[0]
        if name in installed_names:
            assert line.rstrip().endswith("installed") and "not installed" not in line, line


def test_installed_gui_finds_icons_and_style_and_takes_a_screenshot(installed):
    check = ("from PySide6.QtWidgets import QApplication; app = QApplication([]);"
             "from radview.gui import theme; import radview.paths as p;"
             "names = sorted(f.stem for f in (p.resources_dir() / 'icons').glob('*.svg'));"
             "assert names, 'no icons'; bad = [n for n in names if theme.icon(n).isNull()];"
             "assert not bad, bad; assert theme.chrome_qss().strip(), 'no style sheet';"
             "print(len(names))")
    n = int(_run([str(installed["py"]), "-c", check], installed["cwd"], installed["env"]).stdout.split()[-1])
    assert n == len(list((REPO / "resources" / "icons").glob("*.svg")))

    out = installed["cwd"] / "out.png"
    _run([str(installed["venv"] / "bin" / "radview"), "gui", "--screenshot", str(out), "--timeout", "120"],
         installed["cwd"], installed["env"])
    assert out.is_file() and out.stat().st_size > 1000
    from PIL import Image

    with Image.open(out) as im:
        assert im.format == "PNG" and im.width >= 400 and im.height >= 300
        import numpy as np

        # the dark theme came with it: the menu bar strip is dark, not Qt's default light grey
        assert np.asarray(im.convert("L"))[:20].mean() < 90
