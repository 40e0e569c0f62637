"""The image canvas: a QGraphicsView with the image, a heatmap layer and editable box items.

Pixels always come from `radview.io.display.display_image`, so the canvas shows exactly what
`radview render` writes, built at the resolution shown (radview.gui.image_item: box-averaged by
a power-of-two level below 1:1, full resolution at 1:1 and closer; the pixel readout always
reads the stored values). The heatmap and the boxes are children of the image item, so they are
in image pixel coordinates and follow rotation and flips.

Mouse: right-drag = window/level (live readout, throttled re-render); wheel = zoom around the
cursor; middle-drag, or left-drag in pan mode or with Space held = pan; left-drag on a box moves
it, on a box corner resizes it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView
from superqt.utils import qthrottled

from radview.gui.box_item import PRED_COLOR, TRUTH_COLOR, BoxItem  # noqa: F401 (kept importable from here)
from radview.gui.image_item import ImageItem, level_for, reduced_stored
from radview.types import Box, Frame, Window


def _view_qimage(arr: np.ndarray) -> QImage:
    """A QImage over a contiguous uint8 HxW / HxWx3 / HxWx4 array (no copy: `arr` must outlive it)."""
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        fmt, bpl = QImage.Format.Format_Grayscale8, w
    elif arr.shape[2] == 3:
        fmt, bpl = QImage.Format.Format_RGB888, 3 * w
    else:
        fmt, bpl = QImage.Format.Format_RGBA8888, 4 * w
    return QImage(arr.data, w, h, bpl, fmt)


def gray_qimage(arr: np.ndarray) -> QImage:
    """uint8 HxW (gray) or HxWx3 (RGB) or HxWx4 (RGBA) -> QImage that owns a copy of the pixels."""
    arr = np.ascontiguousarray(arr)
    return _view_qimage(arr).copy()


def _pixmap(arr: np.ndarray) -> QPixmap:
    """uint8 gray / RGB / RGBA -> QPixmap in one conversion (the pixmap owns its pixels)."""
    arr = np.ascontiguousarray(arr)
    return QPixmap.fromImage(_view_qimage(arr))


def modality_units(frame: Frame) -> str:
    meta = frame.meta or {}
    if str(meta.get("Modality", "")).upper() == "CT":
        return "HU"
    units = meta.get("RescaleType") or meta.get("RescaleUnits") or ""
    return "" if str(units).upper() in ("US", "UNSPECIFIED") else str(units)


class ImageCanvas(QGraphicsView):
    """One image with its overlays. Emits windowChanged(Window) while window/levelling,
    pixelInfo(text) under the cursor, viewChanged() on zoom/pan/rotate, boxEdited(index, Box),
    activated() when clicked."""

    windowChanged = Signal(object)
    pixelInfo = Signal(str)
    viewChanged = Signal()
    boxEdited = Signal(int, object)
    boxChanged = Signal(object, object)  # (old Box, new Box), with BoxItem.predicted on the sender side
    boxDrawn = Signal(object)
    activated = Signal()
    cursorMoved = Signal(float, float)  # the cursor in image fractions (synced crosshair)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QBrush(QColor("#000000")))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.image_item = ImageItem()
        self.image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.image_item)
        self.heat_item = QGraphicsPixmapItem(self.image_item)
        self.heat_item.setZValue(1)
        self.heat_item.setVisible(False)
        # A 2500x2048 pixmap drawn smoothly costs tens of ms per paint: both layers are cached
        # at screen resolution, so a repaint for a box, the readout or the slider only blits.
        for item in (self.image_item, self.heat_item):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.box_items: list[BoxItem] = []
        self.frame: Frame | None = None
        self.window: Window | None = None
        self.user_invert = False
        self.rotation = 0
        self.flip_h = False
        self.flip_v = False
        self.pan_mode = False
        self.score_threshold = 0.5
        self.show_boxes = True
        self.annotations: dict[str, list[str]] = {}
        self.banner = ""
        self.message = ""
        self.active = False
        self.last_display: np.ndarray | None = None  # the display image shown (at display_level)
        self._levels: dict[int, Frame] = {}  # the frame's stored values reduced per level
        self._array_shown = False  # show_array: a ready image, no levels
        self._relevel_pending = False
        self.heat_key: tuple | None = None  # what the heat layer shows (the AI controller's cache key)
        self._fit_mode = True
        self._drag: tuple[str, QPointF, Window | None] | None = None
        self._space = False
        self._pixel_text = ""
        self._rubber: QRectF | None = None
        # measurement tools (radview.gui.measure_tools): the active tool's handler gets the
        # left-button gestures; measurements = [(store event id or None, Measurement)] drawn on top
        self.tool_handler = None
        self.measurements: list = []
        self.lens_key = Qt.Key.Key_Z  # held: a magnifier lens under the cursor (canvas_overlay)
        self.lens: QPointF | None = None  # its viewport position while the key is held
        self.crosshair: tuple[float, float] | None = None  # a synced crosshair (image fractions)
        self._render_throttled = qthrottled(self.render_image, timeout=40, leading=True)

    # ------------------------------------------------------------------ content
    def set_frame(self, frame: Frame | None, window: Window | None = None, keep_view: bool = False) -> None:
        if frame is not self.frame or frame is None:
            # a new image: nothing of the previous one may stay on screen (header, readout)
            self._levels = {}
            self.annotations.clear()
            if self._pixel_text:
                self._pixel_text = ""
                self.pixelInfo.emit("")
        self.frame = frame
        self._array_shown = False
        self.message = ""
        self.clear_overlays()
        if frame is None:
            self.image_item.set_display(QPixmap(), 1, (0, 0))
            self.last_display = None
            self.viewport().update()
            return
        self.window = window  # None: the file's own VOI (VOI LUT, else its first window, else auto)
        h, w = frame.shape
        if self.image_item.image_size() != (float(w), float(h)):
            self.image_item.set_display(QPixmap(), 1, (w, h))  # the geometry first: fit needs it
        self._apply_orientation()
        if not keep_view or self._fit_mode:
            self.fit()
        self.render_image()  # at the level of the zoom it is shown at

    def set_message(self, text: str) -> None:
        """A centred message in place of an image (loading…, or an error)."""
        self.message = text
        self.viewport().update()

    @property
    def display_level(self) -> int:
        """How many image pixels a display pixel averages per side (1: full resolution)."""
        return self.image_item.level

    def wanted_level(self) -> int:
        """The display level for the current zoom (device pixels per image pixel)."""
        if self.frame is None or self._array_shown:
            return 1
        return level_for(self.zoom() * self.devicePixelRatioF())

    def _level_frame(self, k: int) -> Frame:
        f = self._levels.get(k)
        if f is None:
            f = self.frame if k == 1 else replace(self.frame, stored=reduced_stored(self.frame.stored, k))
            self._levels = {k: f}  # one level kept (the shown one): zooming rebuilds it
        return f

    def render_image(self) -> None:
        if self.frame is None:
            return
        from radview.io.display import display_image

        k = self.wanted_level()
        arr = display_image(self._level_frame(k), window=self.window, invert=self.effective_invert())
        self.last_display = arr
        h, w = self.frame.shape
        self.image_item.set_display(_pixmap(arr), k, (w, h))
        self.viewport().update()

    def display_region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
        """The full-resolution display image of image pixels [y0:y1, x0:x1] (clipped; None if
        empty): the lens shows it whatever the level."""
        if self.frame is None or self._array_shown:
            return None
        h, w = self.frame.shape
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))
        if x1 <= x0 or y1 <= y0:
            return None
        from radview.io.display import display_image

        crop = replace(self.frame, stored=self.frame.stored[y0:y1, x0:x1])
        return display_image(crop, window=self.window, invert=self.effective_invert())

    def _check_level(self) -> None:
        """After a zoom (wheel, fit, 1:1, resize, a linked view): the display image is rebuilt
        once at the new level, in the next event-loop turn (never inside a paint)."""
        if self._relevel_pending or self.frame is None or self._array_shown:
            return
        if self.wanted_level() != self.image_item.level:
            self._relevel_pending = True
            QTimer.singleShot(0, self._relevel)

    def _relevel(self) -> None:
        self._relevel_pending = False
        if self.frame is not None and not self._array_shown and self.wanted_level() != self.image_item.level:
            self.render_image()

    def show_array(self, arr: np.ndarray) -> None:
        """Show a ready uint8 image (used by 'what the model saw'), in place of the frame's."""
        self._array_shown = True
        self.last_display = arr
        self.image_item.set_display(_pixmap(arr), 1)
        self._apply_orientation()
        self.fit()

    def current_window(self) -> Window | None:
        """The window in effect (the file's default when none was chosen)."""
        if self.window is not None or self.frame is None:
            return self.window
        w = self.frame.default_window
        return replace(w, name="VOI LUT") if self.frame.voi_lut is not None else w

    def effective_invert(self) -> bool:
        return bool(self.frame is not None and self.frame.invert) != self.user_invert

    def set_window(self, window: Window, throttled: bool = False) -> None:
        self.window = window
        self.windowChanged.emit(window)
        if throttled:
            self._render_throttled()
        else:
            self.render_image()

    def set_invert(self, on: bool) -> None:
        self.user_invert = on
        self.render_image()

    # ------------------------------------------------------------------ overlays
    def clear_overlays(self) -> None:
        self.heat_key = None
        self.set_heatmap(None)
        self.set_boxes(())
        self.banner = ""

    def set_heatmap(self, rgba: np.ndarray | None, opacity: float | None = None) -> None:
        if rgba is None:
            self.heat_item.setPixmap(QPixmap())
            self.heat_item.setVisible(False)
            return
        self.heat_item.setPixmap(_pixmap(rgba))
        iw, ih = self.image_item.image_size()
        if iw and ih and (iw, ih) != (rgba.shape[1], rgba.shape[0]):
            self.heat_item.setTransform(QTransform.fromScale(iw / rgba.shape[1], ih / rgba.shape[0]))
        else:
            self.heat_item.setTransform(QTransform())
        if opacity is not None:
            self.heat_item.setOpacity(opacity)
        self.heat_item.setVisible(True)

    def set_heat_opacity(self, opacity: float) -> None:
        self.heat_item.setOpacity(opacity)

    def set_boxes(self, boxes, truth=()) -> None:
        """Show these boxes, updating the items incrementally: an item whose box is unchanged
        is kept as it is (selection, hover), and the item the user is dragging is never
        removed (a CAM or a prediction arriving mid-drag must not delete it)."""
        wanted = [(b, False, i) for i, b in enumerate(truth)] + [(b, True, i) for i, b in enumerate(boxes)]
        grabbed = self.scene().mouseGrabberItem()
        keep: list[BoxItem] = []
        pool: dict[tuple, list[BoxItem]] = {}
        for item in self.box_items:
            pool.setdefault((item.box, item.predicted), []).append(item)
        for b, predicted, i in wanted:
            items = pool.get((b, predicted))
            if items:
                item = items.pop(0)
                item.index = i
            else:
                item = BoxItem(b, i, predicted, self, self.image_item)
            keep.append(item)
        for items in pool.values():
            for item in items:
                if item is grabbed or item.dragging:
                    keep.append(item)  # the user holds it: it goes when released
                else:
                    self.scene().removeItem(item)
        self.box_items = keep
        self._update_box_visibility()

    def set_score_threshold(self, value: float) -> None:
        self.score_threshold = value
        self._update_box_visibility()

    def set_show_boxes(self, on: bool) -> None:
        self.show_boxes = on
        self._update_box_visibility()

    def _update_box_visibility(self) -> None:
        for item in self.box_items:
            score = item.box.score
            item.setVisible(self.show_boxes and (score is None or score >= self.score_threshold))
        self.viewport().update()

    def visible_boxes(self) -> list[Box]:
        return [it.box for it in self.box_items if it.isVisible()]

    # ------------------------------------------------------------------ view
    def zoom(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        self._fit_mode = True
        rect = self.image_item.sceneBoundingRect()
        if rect.isEmpty():
            return
        self._update_scene_rect()
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.viewChanged.emit()

    def one_to_one(self) -> None:
        self._fit_mode = False
        center = self.mapToScene(self.viewport().rect().center())
        self.setTransform(QTransform())
        self.centerOn(center)
        self.viewChanged.emit()

    def zoom_by(self, factor: float, at=None) -> None:
        """Zoom by factor keeping the scene point under viewport position `at` (default: the
        centre) where it is."""
        self._fit_mode = False
        z = self.zoom() * factor
        if not 0.02 <= z <= 64:
            return
        at = QPointF(self.viewport().rect().center()) if at is None else QPointF(at)
        scene_p = self.mapToScene(at.toPoint())
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.scale(factor, factor)
        moved = self.mapFromScene(scene_p) - at.toPoint()
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + moved.x())
        v.setValue(v.value() + moved.y())
        self.viewChanged.emit()

    def pan_by(self, dx: float, dy: float) -> None:
        self._fit_mode = False
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(int(h.value() - dx))
        v.setValue(int(v.value() - dy))
        self.viewChanged.emit()

    def rotate(self, degrees: int) -> None:
        self.rotation = (self.rotation + degrees) % 360
        self._apply_orientation()
        self.fit()

    def flip(self, horizontal: bool) -> None:
        if horizontal:
            self.flip_h = not self.flip_h
        else:
            self.flip_v = not self.flip_v
        self._apply_orientation()
        self.fit()

    def apply_geometry(self, geo) -> None:
        """Show the view as radview.state.Geometry says (rotation, flips, invert; zoom None = fit)."""
        invert_changed = bool(geo.invert) != self.user_invert
        oriented = (geo.rotation % 360, geo.flip_h, geo.flip_v) != (self.rotation, self.flip_h, self.flip_v)
        self.rotation, self.flip_h, self.flip_v = geo.rotation % 360, geo.flip_h, geo.flip_v
        self.user_invert = bool(geo.invert)
        if invert_changed:
            self.render_image()
        if oriented:
            self._apply_orientation()
            self.fit()
        self.viewport().update()

    def orientation_indicator(self) -> str:
        """'' when the image is shown as acquired, else what was done to it (drawn on the canvas)."""
        from radview.state import Geometry, orientation_text

        return orientation_text(Geometry(self.rotation, self.flip_h, self.flip_v))

    def orientation_letters(self):
        """radview.state.orientation.Orientation of the view as shown (None without a frame)."""
        if self.frame is None:
            return None
        from radview.state.orientation import orientation_of

        return orientation_of(self.frame.meta, self.rotation, self.flip_h, self.flip_v)

    def reset_view(self) -> None:
        self.rotation, self.flip_h, self.flip_v, self.user_invert = 0, False, False, False
        if self.frame is not None:
            self.window = None
            self.windowChanged.emit(self.current_window())
            self.render_image()
        self._apply_orientation()
        self.fit()

    def _apply_orientation(self) -> None:
        iw, ih = self.image_item.image_size()
        cx, cy = iw / 2, ih / 2
        t = QTransform()
        t.translate(cx, cy)
        t.rotate(self.rotation)
        t.scale(-1 if self.flip_h else 1, -1 if self.flip_v else 1)
        t.translate(-cx, -cy)
        self.image_item.setTransform(t)
        self._update_scene_rect()

    def _update_scene_rect(self) -> None:
        r = self.image_item.sceneBoundingRect()
        m = max(r.width(), r.height(), 1.0) * 4
        self.setSceneRect(r.adjusted(-m, -m, m, m))

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    # ------------------------------------------------------------------ mouse
    def image_pos(self, view_pos) -> tuple[int, int] | None:
        p = self.image_item.mapFromScene(self.mapToScene(view_pos))
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        if self.frame is None:
            return None
        h, w = self.frame.shape
        return (x, y) if 0 <= x < w and 0 <= y < h else None

    def image_point(self, view_pos: QPointF) -> tuple[float, float]:
        """Continuous image coordinates (x = column, y = row) of a viewport point."""
        p = self.image_item.mapFromScene(self.mapToScene(view_pos.toPoint()))
        return (float(p.x()), float(p.y()))

    def view_point(self, x: float, y: float) -> QPointF:
        """The viewport point of image coordinates (follows zoom, pan, rotation and flips)."""
        return QPointF(self.mapFromScene(self.image_item.mapToScene(QPointF(x, y))))

    def mousePressEvent(self, event):  # noqa: N802
        self.activated.emit()
        button = event.button()
        if button == Qt.MouseButton.RightButton and self.frame is not None:
            self._drag = ("wl", event.position(), self.current_window())
            self.setCursor(Qt.CursorShape.SizeAllCursor)
            return
        handler = self.tool_handler
        if (button == Qt.MouseButton.LeftButton and handler is not None and self.frame is not None
                and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier and not (self._space or self.pan_mode)
                and handler.press(self, self.image_point(event.position()))):
            return
        if (button == Qt.MouseButton.LeftButton and self.frame is not None
                and (event.modifiers() & Qt.KeyboardModifier.ShiftModifier or getattr(handler, "kind", "") == "box")
                and self.image_pos(event.position().toPoint()) is not None):
            self._drag = ("draw", event.position(), None)
            return
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and (self.pan_mode or self._space)):
            self._drag = ("pan", event.position(), None)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):  # noqa: N802
        if self.tool_handler is not None and self.tool_handler.active:
            self.tool_handler.move(self, self.image_point(event.position()))
            self._update_pixel_info(event.position().toPoint())
            return
        if self._drag is not None:
            kind, start, win0 = self._drag
            d = event.position() - start
            if kind == "wl" and win0 is not None and self.frame is not None:
                base = abs(float(self.frame.default_window.width)) or 1.0  # real-number windows too
                step = base / 300.0
                width = max(base * 1e-3, win0.width + d.x() * step)
                center = win0.center - d.y() * step
                self.set_window(Window(center, width, win0.function, "manual"), throttled=True)
            elif kind == "pan":
                self.pan_by(d.x(), d.y())
                self._drag = ("pan", event.position(), None)
            elif kind == "draw":
                self._rubber = self._image_rect(start, event.position())
                self.viewport().update()
            return
        self._update_pixel_info(event.position().toPoint())
        if self.lens is not None:
            self.lens = QPointF(event.position())
            self.viewport().update()
        if self.frame is not None:
            x, y = self.image_point(event.position())
            h, w = self.frame.shape
            self.cursorMoved.emit(x / w, y / h)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):  # noqa: N802
        if (self.tool_handler is not None and self.tool_handler.active
                and event.button() == Qt.MouseButton.LeftButton):
            self.tool_handler.release(self, self.image_point(event.position()))
            return
        if self._drag is not None:
            kind, start, _w = self._drag
            self._drag = None
            self.unsetCursor()
            if kind == "wl":
                self.render_image()  # the final window, whatever the throttle dropped
            elif kind == "draw":
                self._rubber = None
                r = self._image_rect(start, event.position())
                if r.width() >= 2 and r.height() >= 2:
                    self.boxDrawn.emit(Box(r.x(), r.y(), r.width(), r.height()))
                self.viewport().update()
            return
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event):  # noqa: N802
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(1.0015 ** delta, at=event.position())

    def keyPressEvent(self, event):  # noqa: N802
        if event.key() == self.lens_key and not event.modifiers():
            if not event.isAutoRepeat():
                self.lens = QPointF(self.mapFromGlobal(self.cursor().pos()))
                self.viewport().update()
            return
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):  # noqa: N802
        if event.key() == self.lens_key and not event.isAutoRepeat():
            self.lens = None
            self.viewport().update()
            return
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.unsetCursor()
            return
        super().keyReleaseEvent(event)

    def _image_rect(self, a: QPointF, b: QPointF) -> QRectF:
        """The image-pixel rectangle between two viewport points, clipped to the image."""
        pa = self.image_item.mapFromScene(self.mapToScene(a.toPoint()))
        pb = self.image_item.mapFromScene(self.mapToScene(b.toPoint()))
        h, w = self.frame.shape
        r = QRectF(pa, pb).normalized()
        return r.intersected(QRectF(0, 0, w, h))

    def selected_box(self) -> BoxItem | None:
        items = [it for it in self.box_items if it.isSelected() and it.isVisible()]
        return items[0] if items else None

    def _update_pixel_info(self, pos) -> None:
        xy = self.image_pos(pos)
        if xy is None or self.frame is None:
            text = ""
        else:
            from radview.io.display import modality_value

            stored, value = modality_value(self.frame, xy[1], xy[0])
            if self.frame.is_color:
                text = f"x {xy[0]}  y {xy[1]}  RGB {stored}"
            else:
                units = modality_units(self.frame)
                text = f"x {xy[0]}  y {xy[1]}  stored {stored:g}  value {value:g} {units}".rstrip()
        if text != self._pixel_text:
            self._pixel_text = text
            self.pixelInfo.emit(text)
            self.viewport().update()

    # ------------------------------------------------------------------ corner text
    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802
        from radview.gui.canvas_overlay import paint_foreground

        self._check_level()  # every zoom path ends in a paint: the display level follows it
        paint_foreground(self, painter)
