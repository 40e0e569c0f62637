"""Window presets that fit the image: by modality, never CT Hounsfield windows on a radiograph.

`presets_for(frame)` lists, in this order:
  1. the file's own windows (WindowCenter/Width, each with its explanation) and its VOI LUT,
  2. "auto" (a robust percentile window of the modality values) and "full range" (min..max),
  3. CT only (Modality CT): lung, mediastinum, soft tissue, bone, brain, in Hounsfield units,
  4. the user's presets saved for this modality (`save_user_preset`).
`presets_for("CR")` (a modality alone, no pixels) gives only 3 and 4.

User presets live in <user data>/presets.json: {"CR": [{"name", "center", "width", "function"}]}.
A file that does not parse is never overwritten (the user's entries are not lost): reading it
raises PresetsError naming the file and the reason; `presets_for` reports it through `on_error`
and goes on with the built-in presets.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radview import paths
from radview.types import Window

# (name, center, width) in HU; the usual radiology values (Radiopaedia "windowing (CT)")
CT_PRESETS = (
    ("lung", -600.0, 1500.0),
    ("mediastinum", 50.0, 350.0),
    ("soft tissue", 50.0, 400.0),
    ("bone", 400.0, 1800.0),
    ("brain", 40.0, 80.0),
)
NO_MODALITY = "OT"  # the key for images without a Modality (PNG, JPEG): DICOM's "other"


class PresetsError(ValueError):
    """The user presets file is unusable; the message names the file and the reason."""


@dataclass(frozen=True)
class Preset:
    """A window the viewer offers. window None means the file's VOI LUT (source 'voi_lut').
    source: 'file' | 'voi_lut' | 'auto' | 'full' | 'ct' | 'user'."""

    name: str
    window: Window | None
    source: str
    modality: str = ""


def modality_of(frame_or_modality: Any) -> str:
    if isinstance(frame_or_modality, str):
        m = frame_or_modality
    else:
        meta = getattr(frame_or_modality, "meta", None) or {}
        m = meta.get("Modality", "") if isinstance(meta, dict) else ""
    m = str(m or "").strip().upper()
    return m or NO_MODALITY


def presets_path() -> Path:
    return paths.user_home() / "presets.json"


def load_user_presets(path: Path | None = None) -> dict[str, list[Preset]]:
    """Modality -> the user's presets. Raises PresetsError for a file that does not parse."""
    path = path or presets_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PresetsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise PresetsError(f"{path}: not valid JSON ({exc}); user presets not loaded, the file is kept") from None
    if not isinstance(data, dict):
        raise PresetsError(f"{path}: expected an object of modality -> presets; user presets not loaded")
    out: dict[str, list[Preset]] = {}
    for mod, items in data.items():
        if not isinstance(items, list):
            raise PresetsError(f"{path}: {mod!r}: expected a list of presets")
        for i, it in enumerate(items):
            try:
                w = _window(it["name"], it["center"], it["width"], it.get("function", "LINEAR"))
            except (KeyError, TypeError, ValueError) as exc:
                raise PresetsError(f"{path}: {mod!r} preset {i + 1}: {exc}") from None
            out.setdefault(str(mod).upper(), []).append(Preset(w.name, w, "user", str(mod).upper()))
    return out


def _window(name: Any, center: Any, width: Any, function: Any = "LINEAR") -> Window:
    name = str(name).strip()
    if not name:
        raise ValueError("a preset needs a name")
    c, w = float(center), float(width)
    if not (math.isfinite(c) and math.isfinite(w)) or w <= 0:
        raise ValueError(f"center {center!r} / width {width!r}: finite numbers, width > 0")
    function = str(function or "LINEAR").upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        raise ValueError(f"function {function!r}: LINEAR, LINEAR_EXACT or SIGMOID")
    return Window(c, w, function, name)


def _write(data: dict[str, list[Preset]], path: Path) -> None:
    doc = {m: [{"name": p.name, "center": p.window.center, "width": p.window.width,  # type: ignore[union-attr]
                "function": p.window.function} for p in items]  # type: ignore[union-attr]
           for m, items in sorted(data.items()) if items}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_user_preset(modality: str, name: str, center: float, width: float, function: str = "LINEAR",
                     path: Path | None = None) -> Preset:
    """Save (or replace, by name) a preset for a modality; returns it. Raises PresetsError when
    the existing file is unusable (it is left as it is), ValueError for a bad window."""
    path = path or presets_path()
    mod = modality_of(modality)
    w = _window(name, center, width, function)
    data = load_user_presets(path)
    items = [p for p in data.get(mod, []) if p.name != w.name]
    preset = Preset(w.name, w, "user", mod)
    data[mod] = [*items, preset]
    _write(data, path)
    return preset


def delete_user_preset(modality: str, name: str, path: Path | None = None) -> bool:
    path = path or presets_path()
    mod = modality_of(modality)
    data = load_user_presets(path)
    before = data.get(mod, [])
    after = [p for p in before if p.name != name]
    if len(after) == len(before):
        return False
    data[mod] = after
    _write(data, path)
    return True


def presets_for(frame_or_modality: Any, *, user: bool = True,
                on_error: Callable[[str], None] | None = None) -> list[Preset]:
    """The presets to offer for a frame (or a modality name), in menu order (see the module doc)."""
    mod = modality_of(frame_or_modality)
    out: list[Preset] = []
    frame = None if isinstance(frame_or_modality, str) else frame_or_modality
    if frame is not None and getattr(frame, "stored", None) is not None:
        from radview.io.display import auto_window_of, full_range_window

        for i, w in enumerate(frame.windows):
            out.append(Preset(w.name or f"DICOM {i + 1}", w, "file", mod))
        if frame.voi_lut is not None:
            out.append(Preset(frame.voi_lut.name or "DICOM VOI LUT", None, "voi_lut", mod))
        out.append(Preset("auto", auto_window_of(frame), "auto", mod))
        out.append(Preset("full range", full_range_window(frame), "full", mod))
    if mod == "CT" and not getattr(frame, "is_color", False):
        out.extend(Preset(n, Window(c, w, "LINEAR", n), "ct", mod) for n, c, w in CT_PRESETS)
    if user:
        try:
            out.extend(load_user_presets().get(mod, []))
        except PresetsError as exc:
            if on_error is None:
                raise
            on_error(str(exc))
    return out
