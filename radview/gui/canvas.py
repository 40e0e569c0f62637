"""The image canvas: a QGraphicsView with the image, a heatmap layer and editable box items.

Pixels always come from `radview.io.display.display_image`, so the canvas shows exactly what
`radview render` writes. The heatmap and the boxes are children of the image item, so they are
in image pixel coordinates and follow rotation and flips.

Mouse: right-drag = window/level (live readout, throttled re-render); wheel = zoom around the
cursor; middle-drag, or left-drag in pan mode or with Space held = pan; left-drag on a box moves
it, on a box corner resizes it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)
from superqt.utils import qthrottled

from radview.types import Box, Frame, Window

PRED_COLOR = QColor("#ffb454")
TRUTH_COLOR = QColor("#6bcf8f")
HANDLE_PX = 8.0  # corner grab distance in screen pixels


def gray_qimage(arr: np.ndarray) -> QImage:
    """uint8 HxW (gray) or HxWx3 (RGB) or HxWx4 (RGBA) -> QImage that owns a copy of the pixels."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        fmt, bpl = QImage.Format.Format_Grayscale8, w
    elif arr.shape[2] == 3:
        fmt, bpl = QImage.Format.Format_RGB888, 3 * w
    else:
        fmt, bpl = QImage.Format.Format_RGBA8888, 4 * w
    return QImage(arr.data, w, h, bpl, fmt).copy()


def modality_units(frame: Frame) -> str:
    meta = frame.meta or {}
    if str(meta.get("Modality", "")).upper() == "CT":
        return "HU"
    units = meta.get("RescaleType") or meta.get("RescaleUnits") or ""
    return "" if str(units).upper() in ("US", "UNSPECIFIED") else str(units)


class BoxItem(QGraphicsRectItem):
    """A box in image coordinates: movable, resizable from its corners, with a label and score."""

    def __init__(self, box: Box, index: int, predicted: bool, canvas: ImageCanvas, parent: QGraphicsItem):
        super().__init__(QRectF(box.x, box.y, box.width, box.height), parent)
        self.box, self.index, self.predicted, self._canvas = box, index, predicted, canvas
        color = PRED_COLOR if predicted else TRUTH_COLOR
        pen = QPen(color, 2)
        pen.setCosmetic(True)
        if not predicted:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setAcceptHoverEvents(True)
        text = box.label if box.score is None else f"{box.label} {box.score:.2f}"
        self.text = QGraphicsSimpleTextItem(text, self)
        self.text.setBrush(QBrush(color))
        self.text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        font = QFont()
        font.setPointSize(9)
        font.setBold(True)
        self.text.setFont(font)
        self._place_text()
        self._resize_corner: int | None = None

    def _place_text(self) -> None:
        r = self.rect()
        self.text.setPos(r.left(), r.top())
        self.text.setY(r.top() - 2)

    def _corner_at(self, pos: QPointF) -> int | None:
        scale = max(self._canvas.transform().m11(), 1e-6)
        tol = HANDLE_PX / scale
        r = self.rect()
        for i, c in enumerate((r.topLeft(), r.topRight(), r.bottomLeft(), r.bottomRight())):
            if abs(c.x() - pos.x()) <= tol and abs(c.y() - pos.y()) <= tol:
                return i
        return None

    def hoverMoveEvent(self, event):  # noqa: N802
        corner = self._corner_at(event.pos())
        self.setCursor(Qt.CursorShape.SizeFDiagCursor if corner in (0, 3)
                       else Qt.CursorShape.SizeBDiagCursor if corner in (1, 2)
                       else Qt.CursorShape.SizeAllCursor)
        super().hoverMoveEvent(event)

    def mousePressEvent(self, event):  # noqa: N802
        self._resize_corner = self._corner_at(event.pos())
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):  # noqa: N802
        if self._resize_corner is None:
            super().mouseMoveEvent(event)
            return
        r = QRectF(self.rect())
        p = event.pos()
        if self._resize_corner == 0:
            r.setTopLeft(p)
        elif self._resize_corner == 1:
            r.setTopRight(p)
        elif self._resize_corner == 2:
            r.setBottomLeft(p)
        else:
            r.setBottomRight(p)
        self.setRect(r.normalized())
        self._place_text()

    def mouseReleaseEvent(self, event):  # noqa: N802
        super().mouseReleaseEvent(event)
        self._resize_corner = None
        r = self.rect().translated(self.pos())
        new = replace(self.box, x=r.x(), y=r.y(), width=r.width(), height=r.height())
        if new != self.box:
            old, self.box = self.box, new
            self._canvas.boxEdited.emit(self.index, new)
            self._canvas.boxChanged.emit(old if not self.predicted else replace(old, label=f"predicted:{old.label}"),
                                         new)

    def box_in_image(self) -> Box:
        return self.box


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
        self.image_item = QGraphicsPixmapItem()
        self.image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.image_item)
        self.heat_item = QGraphicsPixmapItem(self.image_item)
        self.heat_item.setZValue(1)
        self.heat_item.setVisible(False)
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
        self.last_display: np.ndarray | None = None
        self._fit_mode = True
        self._drag: tuple[str, QPointF, Window | None] | None = None
        self._space = False
        self._pixel_text = ""
        self._rubber: QRectF | None = None
        self._render_throttled = qthrottled(self.render_image, timeout=40, leading=True)

    # ------------------------------------------------------------------ content
    def set_frame(self, frame: Frame | None, window: Window | None = None, keep_view: bool = False) -> None:
        self.frame = frame
        self.message = ""
        self.clear_overlays()
        if frame is None:
            self.image_item.setPixmap(QPixmap())
            self.last_display = None
            self.viewport().update()
            return
        self.window = window  # None: the file's own VOI (VOI LUT, else its first window, else auto)
        self.render_image()
        self._apply_orientation()
        if not keep_view or self._fit_mode:
            self.fit()

    def set_message(self, text: str) -> None:
        """A centred message in place of an image (loading…, or an error)."""
        self.message = text
        self.viewport().update()

    def render_image(self) -> None:
        if self.frame is None:
            return
        from radview.io.display import display_image

        arr = display_image(self.frame, window=self.window, invert=self.effective_invert())
        self.last_display = arr
        self.image_item.setPixmap(QPixmap.fromImage(gray_qimage(arr)))
        self.viewport().update()

    def show_array(self, arr: np.ndarray) -> None:
        """Show a ready uint8 image (used by 'what the model saw'), in place of the frame's."""
        self.last_display = arr
        self.image_item.setPixmap(QPixmap.fromImage(gray_qimage(arr)))
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
        self.set_heatmap(None)
        self.set_boxes(())
        self.banner = ""

    def set_heatmap(self, rgba: np.ndarray | None, opacity: float | None = None) -> None:
        if rgba is None:
            self.heat_item.setPixmap(QPixmap())
            self.heat_item.setVisible(False)
            return
        self.heat_item.setPixmap(QPixmap.fromImage(gray_qimage(rgba)))
        img = self.image_item.pixmap()
        if not img.isNull() and (img.width(), img.height()) != (rgba.shape[1], rgba.shape[0]):
            self.heat_item.setTransform(QTransform.fromScale(img.width() / rgba.shape[1],
                                                             img.height() / rgba.shape[0]))
        else:
            self.heat_item.setTransform(QTransform())
        if opacity is not None:
            self.heat_item.setOpacity(opacity)
        self.heat_item.setVisible(True)

    def set_heat_opacity(self, opacity: float) -> None:
        self.heat_item.setOpacity(opacity)

    def set_boxes(self, boxes, truth=()) -> None:
        for item in self.box_items:
            self.scene().removeItem(item)
        self.box_items = []
        for i, b in enumerate(truth):
            self.box_items.append(BoxItem(b, i, False, self, self.image_item))
        for i, b in enumerate(boxes):
            self.box_items.append(BoxItem(b, i, True, self, self.image_item))
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

    def reset_view(self) -> None:
        self.rotation, self.flip_h, self.flip_v, self.user_invert = 0, False, False, False
        if self.frame is not None:
            self.window = None
            self.windowChanged.emit(self.current_window())
            self.render_image()
        self._apply_orientation()
        self.fit()

    def _apply_orientation(self) -> None:
        pm = self.image_item.pixmap()
        cx, cy = pm.width() / 2, pm.height() / 2
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

    def mousePressEvent(self, event):  # noqa: N802
        self.activated.emit()
        button = event.button()
        if button == Qt.MouseButton.RightButton and self.frame is not None:
            self._drag = ("wl", event.position(), self.current_window())
            self.setCursor(Qt.CursorShape.SizeAllCursor)
            return
        if (button == Qt.MouseButton.LeftButton and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
                and self.frame is not None and self.image_pos(event.position().toPoint()) is not None):
            self._drag = ("draw", event.position(), None)
            return
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and (self.pan_mode or self._space)):
            self._drag = ("pan", event.position(), None)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):  # noqa: N802
        if self._drag is not None:
            kind, start, win0 = self._drag
            d = event.position() - start
            if kind == "wl" and win0 is not None and self.frame is not None:
                base = max(float(self.frame.default_window.width), 1.0)
                step = base / 300.0
                width = max(1.0, win0.width + d.x() * step)
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
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):  # noqa: N802
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
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event):  # noqa: N802
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
        painter.save()
        painter.resetTransform()
        vr = self.viewport().rect()
        font = QFont()
        font.setPointSize(9)
        painter.setFont(font)
        fm = painter.fontMetrics()
        lh = fm.height()
        ann = dict(self.annotations)
        bl = list(ann.get("bottom_left", []))
        win = self.current_window()
        if win is not None and self.frame is not None:
            bl.append(f"W {win.width:.0f}  L {win.center:.0f}" + (f"  ({win.name})" if win.name else ""))
            bl.append(f"Zoom {self.zoom() * 100:.0f}%" + ("  inverted" if self.user_invert else ""))
        br = list(ann.get("bottom_right", []))
        if self._pixel_text:
            br.append(self._pixel_text)
        top = lh + 6 + (26 if self.banner else 0)
        corners = {
            "top_left": (ann.get("top_left", []), Qt.AlignmentFlag.AlignLeft, top),
            "top_right": (ann.get("top_right", []), Qt.AlignmentFlag.AlignRight, top),
            "bottom_left": (bl, Qt.AlignmentFlag.AlignLeft, None),
            "bottom_right": (br, Qt.AlignmentFlag.AlignRight, None),
        }
        for lines, align, y0 in corners.values():
            y = y0 if y0 is not None else vr.height() - 6 - lh * (len(lines) - 1)
            room = int(vr.width() * (0.62 if align == Qt.AlignmentFlag.AlignLeft else 0.36)) - 10
            for line in lines:
                line = fm.elidedText(line, Qt.TextElideMode.ElideMiddle, max(room, 20))
                w = fm.horizontalAdvance(line)
                x = 8 if align == Qt.AlignmentFlag.AlignLeft else vr.width() - 8 - w
                painter.setPen(QColor(0, 0, 0, 200))
                painter.drawText(x + 1, y + 1, line)
                painter.setPen(QColor("#e8e8e8") if not line.startswith("!") else QColor("#ffb454"))
                painter.drawText(x, y, line)
                y += lh
        if self.banner:
            painter.fillRect(0, 0, vr.width(), 24, QColor(170, 90, 0, 215))
            painter.setPen(QColor("#ffffff"))
            bold = QFont(font)
            bold.setBold(True)
            painter.setFont(bold)
            text = painter.fontMetrics().elidedText(self.banner, Qt.TextElideMode.ElideRight, vr.width() - 16)
            painter.drawText(QRectF(8, 0, vr.width() - 16, 24),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        if self.message:
            painter.setPen(QColor("#9aa3ad"))
            painter.drawText(QRectF(vr), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
        if self._rubber is not None:
            r = self.mapFromScene(self.image_item.mapToScene(self._rubber)).boundingRect()
            pen = QPen(QColor("#6bcf8f"), 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(r)
        if self.active:
            pen = QPen(QColor("#3d6d99"), 2)
            painter.setPen(pen)
            painter.drawRect(vr.adjusted(1, 1, -1, -1))
        painter.restore()
