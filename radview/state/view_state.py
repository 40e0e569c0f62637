"""The view state of the app, without Qt (napari's ViewerModel shape).

    state = ViewState()
    state.events.geometry.connect(lambda view, geo: ...)   # one emitter per field
    state.set_folder("/data/x")
    state.set_study(study)          # resets per-view geometry and windows unless linked
    state.rotate(0, 90); state.flip(0, horizontal=True)
    state.set_overlays(show_cam=False)  # events.overlays(new Overlays, changed field names)
    state.put_prediction(pred); state.put_cam(key, cam)

Widgets never write into each other: they call these methods and redraw on the events.
Fields and their events (arguments):
    folder(path)                    a folder was opened (predictions, CAMs, labels dropped)
    study(Study | None)             the study on screen
    view(index)                     the active view of the study
    grid(bool)                      all views at once, or one at a time
    geometry(view index, Geometry)  rotation / flip / invert / zoom / pan of one view
    window(view index, Window|None) the window of one view (None: the file's own)
    overlays(Overlays, names)       CAM on / opacity / colormap / block, boxes, threshold ...
    prediction(ref key)             an image prediction arrived (or was dropped: key "")
    study_prediction(study key)
    cam(ref key)                    a CAM map arrived
    label(item key)                 the current label of an item changed (a correction, undo)
    pixel(text)                     the pixel readout under the cursor ("" when none)
    model(name)                     the model whose answers are shown
    link(groups)                    linked views (radview.state.link): () when not linked
    framing(view index, Framing)    a linked view must show this zoom / pan (a partner moved)
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from radview.state.events import Events
from radview.state.link import FIT, Framing, partners
from radview.types import CamMap, Label, Prediction, Study, StudyPrediction, Window


@dataclass(frozen=True)
class Geometry:
    """How one view is oriented and framed. zoom None: fit to the canvas; center: the image
    point at the canvas centre (None: the image centre)."""

    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False
    invert: bool = False
    zoom: float | None = None
    center: tuple[float, float] | None = None

    @property
    def oriented(self) -> bool:
        """Rotated or flipped: the image is not shown as acquired (a left-right safety matter)."""
        return bool(self.rotation % 360 or self.flip_h or self.flip_v)


IDENTITY = Geometry()


def orientation_text(geo: Geometry) -> str:
    """The canvas indicator: '' when shown as acquired, else e.g. 'ROTATED 90° · FLIPPED L-R'."""
    parts = []
    if geo.rotation % 360:
        parts.append(f"ROTATED {geo.rotation % 360}°")
    if geo.flip_h:
        parts.append("FLIPPED L-R")
    if geo.flip_v:
        parts.append("FLIPPED T-B")
    return " · ".join(parts)


@dataclass(frozen=True)
class Overlays:
    show_cam: bool = True
    opacity: float = 0.45
    colormap: str = "jet"
    block: str | None = None
    show_boxes: bool = True
    threshold: float = 0.5
    model_saw: bool = False


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) for n views: 1x1, 1x2, 2x2, 2x3, 3x3, 3x4 ... (never drops a view)."""
    n = max(1, int(n))
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return rows, cols


CAM_MAX_SIDE = 512  # CAMs are kept as uint8 at most this big (the canvas scales them smoothly)


def compact_cam(cam: CamMap, max_side: int = CAM_MAX_SIDE) -> CamMap:
    """A CAM map as uint8 (0..255), at most max_side pixels on its long side. The display
    quantises to 256 colours anyway, so this loses nothing on screen and keeps a 2.5k x 2k
    map at ~0.2 MB instead of 20 MB. Float maps are clipped to 0..1 (NaN -> 0), block-averaged
    (area resampling) and quantised last: ~15 ms for 2.5k x 2k (the Qt adapter runs it on the
    executor thread, so the GUI thread only ever sees the small map)."""
    data = np.asarray(cam.data)
    h, w = data.shape[:2]
    step = max(1, math.ceil(max(h, w) / max_side))
    hh, ww = (h // step) * step, (w // step) * step
    if data.dtype == np.uint8:
        if step == 1:
            return cam if data.flags.c_contiguous else replace(cam, data=np.ascontiguousarray(data))
        blocks = data[:hh, :ww].reshape(hh // step, step, ww // step, step)
        small = blocks.mean(axis=(1, 3), dtype=np.float32)
        return replace(cam, data=np.ascontiguousarray((small + 0.5).astype(np.uint8)))
    d = np.array(data[:hh, :ww], dtype=np.float32)  # a copy: clipped in place
    if not np.isfinite(d).all():
        np.nan_to_num(d, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(d, 0.0, 1.0, out=d)
    if step > 1:
        d = d.reshape(hh // step, step, ww // step, step).mean(axis=(1, 3), dtype=np.float32)
    return replace(cam, data=np.ascontiguousarray((d * 255.0 + 0.5).astype(np.uint8)))


class ViewState:
    """All that the screen shows, in one Qt-free object."""

    EVENTS = ("folder", "study", "view", "grid", "geometry", "window", "overlays", "prediction",
              "study_prediction", "cam", "label", "pixel", "model", "link", "framing")

    def __init__(self, overlays: Overlays | None = None, max_cams: int = 64) -> None:
        self.events = Events(self.EVENTS)
        self.folder: str | None = None
        self.study: Study | None = None
        self.view = 0
        self.grid = True
        self.link_geometry = False  # the user linked views: keep geometry across studies
        self.geometry: dict[int, Geometry] = {}
        self.windows: dict[int, Window | None] = {}
        self.overlays = overlays or Overlays()
        self.model = ""
        self.predictions: dict[str, Prediction] = {}
        self.study_predictions: dict[str, StudyPrediction] = {}
        self.cams: collections.OrderedDict[tuple, CamMap] = collections.OrderedDict()
        self.max_cams = max_cams
        self.labels: dict[str, Label | None] = {}
        self.pixel = ""
        self.links: tuple[tuple[int, ...], ...] = ()  # linked view groups (radview.state.link)
        self.framings: dict[int, Framing] = {}  # the last shared zoom / pan of linked views

    # ------------------------------------------------------------------ folder / study / view
    def set_folder(self, path: str | None) -> None:
        self.folder = path
        self.predictions.clear()
        self.study_predictions.clear()
        self.cams.clear()
        self.labels.clear()
        self.events.folder.emit(path)
        self.set_study(None)

    def set_study(self, study: Study | None, view: int = 0) -> None:
        """Show a study. Geometry and windows of the previous study are reset (each view
        starts as acquired) unless link_geometry is on; the pixel readout is cleared."""
        n = len(study.views) if study is not None else 0
        view = max(0, min(view, n - 1)) if n else 0
        same = (study is not None and self.study is not None and study.key == self.study.key)
        self.study = study
        if not same:
            self.windows.clear()
            self.framings.clear()
            if self.links:
                self.set_links(())
            old = self.geometry
            if self.link_geometry and old:
                keep = old.get(self.view, next(iter(old.values())))
                self.geometry = {i: keep for i in range(n)}
            else:
                self.geometry = {}
            self.set_pixel("")
            self.view = view
            self.events.study.emit(study)
            for i in range(n):
                self.events.geometry.emit(i, self.geometry_of(i))
        self.set_view(view)

    def set_view(self, index: int) -> None:
        n = len(self.study.views) if self.study is not None else 0
        index = max(0, min(index, n - 1)) if n else 0
        if index != self.view:
            self.view = index
            self.events.view.emit(index)

    def set_grid(self, on: bool) -> None:
        if bool(on) != self.grid:
            self.grid = bool(on)
            self.events.grid.emit(self.grid)

    def views_shown(self) -> list[int]:
        """The view indices on screen: all of them in grid mode, else the active one."""
        if self.study is None or not self.study.views:
            return []
        return list(range(len(self.study.views))) if self.grid else [self.view]

    # ------------------------------------------------------------------ geometry / window
    def geometry_of(self, view: int) -> Geometry:
        return self.geometry.get(view, IDENTITY)

    def set_geometry(self, view: int, geo: Geometry) -> None:
        if self.geometry_of(view) == geo:
            return
        self.geometry[view] = geo
        if self.link_geometry and self.study is not None:
            for i in range(len(self.study.views)):
                if i != view:
                    self.geometry[i] = replace(geo, zoom=self.geometry_of(i).zoom,
                                               center=self.geometry_of(i).center)
                    self.events.geometry.emit(i, self.geometry[i])
        self.events.geometry.emit(view, geo)

    def rotate(self, view: int, degrees: int) -> None:
        g = self.geometry_of(view)
        self.set_geometry(view, replace(g, rotation=(g.rotation + degrees) % 360, zoom=None, center=None))

    def flip(self, view: int, horizontal: bool) -> None:
        g = self.geometry_of(view)
        self.set_geometry(view, replace(g, flip_h=not g.flip_h, zoom=None, center=None) if horizontal
                          else replace(g, flip_v=not g.flip_v, zoom=None, center=None))

    def set_invert(self, view: int, on: bool) -> None:
        self.set_geometry(view, replace(self.geometry_of(view), invert=bool(on)))

    def set_zoom(self, view: int, zoom: float | None, center: tuple[float, float] | None = None) -> None:
        """Record zoom/pan (the canvas applies it itself while the user drags: no echo)."""
        self.geometry[view] = replace(self.geometry_of(view), zoom=zoom, center=center)

    def reset_view(self, view: int) -> None:
        self.set_window(view, None)
        self.set_geometry(view, IDENTITY)

    # ------------------------------------------------------------------ linked views
    def set_links(self, groups) -> None:
        """Link these groups of views (W/L, zoom and pan shared inside a group); () unlinks."""
        groups = tuple(tuple(int(v) for v in g) for g in groups)
        if groups != self.links:
            self.links = groups
            if not groups:
                self.framings.clear()
            self.events.link.emit(groups)

    def partners(self, view: int) -> list[int]:
        return partners(self.links, view)

    def share_window(self, view: int) -> list[int]:
        """Give the linked partners of `view` its window (events per partner that changed);
        returns the partners."""
        others = self.partners(view)
        for p in others:
            self.set_window(p, self.windows.get(view))
        return others

    def share_framing(self, view: int, framing: Framing) -> list[int]:
        """`view` was zoomed / panned to `framing`: its partners follow (a framing event for
        each one whose framing changed); returns the partners."""
        others = self.partners(view)
        self.framings[view] = framing
        for p in others:
            if self.framings.get(p) != framing:
                self.framings[p] = framing
                self.events.framing.emit(p, framing)
        return others

    def framing_of(self, view: int) -> Framing:
        return self.framings.get(view, FIT)

    def set_window(self, view: int, window: Window | None) -> None:
        if self.windows.get(view) != window:
            self.windows[view] = window
            self.events.window.emit(view, window)

    def window_of(self, view: int) -> Window | None:
        return self.windows.get(view)

    # ------------------------------------------------------------------ overlays
    def set_overlays(self, **changes: Any) -> None:
        names = {f.name for f in fields(Overlays)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown overlay settings {sorted(unknown)}")
        new = replace(self.overlays, **changes)
        changed = tuple(n for n in changes if getattr(new, n) != getattr(self.overlays, n))
        if changed:
            self.overlays = new
            self.events.overlays.emit(new, changed)

    # ------------------------------------------------------------------ model answers
    def set_model(self, name: str) -> None:
        self.model = name
        self.predictions.clear()
        self.study_predictions.clear()
        self.cams.clear()
        self.events.model.emit(name)

    def put_prediction(self, pred: Prediction) -> None:
        self.predictions[pred.ref.key] = pred
        self.events.prediction.emit(pred.ref.key)

    def put_study_prediction(self, sp: StudyPrediction) -> None:
        self.study_predictions[sp.study_key] = sp
        self.events.study_prediction.emit(sp.study_key)

    def cam_key(self, ref_key: str, block: str | None = None) -> tuple:
        return (self.model, ref_key, (block if block is not None else self.overlays.block) or "")

    def put_cam(self, key: tuple, cam: CamMap) -> None:
        """Keep a CAM (compacted to uint8, bounded count: the oldest go first)."""
        self.cams[key] = compact_cam(cam)
        self.cams.move_to_end(key)
        while len(self.cams) > self.max_cams:
            self.cams.popitem(last=False)
        self.events.cam.emit(key[1])

    def cam_of(self, ref_key: str) -> CamMap | None:
        cam = self.cams.get(self.cam_key(ref_key))
        return cam

    def cam_bytes(self) -> int:
        return sum(int(c.data.nbytes) for c in self.cams.values())

    # ------------------------------------------------------------------ labels / readout
    def set_label(self, key: str, label: Label | None) -> None:
        """The current label of an item (corrections win) changed."""
        self.labels[key] = label
        self.events.label.emit(key)

    def label_of(self, key: str, default: Label | None = None) -> Label | None:
        return self.labels.get(key, default)

    def set_pixel(self, text: str) -> None:
        if text != self.pixel:
            self.pixel = text
            self.events.pixel.emit(text)
