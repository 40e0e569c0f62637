"""Build hook: ship the bundled resources inside the package.

The checkout keeps them in `resources/` (the training scripts write models there); a wheel gets
a copy as `radview/_resources/` (models with their weights, icons, style sheet; not the README
screenshots), which `radview.paths.resources_dir()` finds first. Everything else is in
pyproject.toml. The sdist carries `resources/` through MANIFEST.in, so a wheel built from the
sdist has them too.
"""
from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("models", "icons", "style")  # sub-folders of resources/ that the app uses at run time
TARGET = ("radview", "_resources")


def _shipped_files() -> list[tuple[Path, Path]]:
    """(source, path relative to radview/_resources) for every file the wheel carries."""
    out = []
    for sub in SHIPPED:
        src = ROOT / "resources" / sub
        if not src.is_dir():
            continue
        for f in sorted(src.rglob("*")):
            rel = f.relative_to(ROOT / "resources")
            if f.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
                out.append((f, rel))
    return out


class build_py_with_resources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable install: resources_dir() uses the checkout's resources/ itself
        target = Path(self.build_lib).joinpath(*TARGET)
        for src, rel in _shipped_files():
            dst = target / rel
            self.mkpath(str(dst.parent))
            self.copy_file(str(src), str(dst), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        if getattr(self, "editable_mode", False):
            return super().get_outputs(include_bytecode)
        target = Path(self.build_lib).joinpath(*TARGET)
        return [*super().get_outputs(include_bytecode), *(str(target / rel) for _, rel in _shipped_files())]


setup(cmdclass={"build_py": build_py_with_resources})
