"""What the canvas paints over the image, in viewport pixels: the corner text (with a dark
outline, so it reads on white and on black), the banner, the rotated/flipped indicator, the
orientation letters at the edges, the measurements and the tool being drawn."""
from __future__ import annotations

import collections
import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPixmap

TEXT = QColor("#f2f2f2")
WARN = QColor("#ffb454")
MEASURE = QColor("#4dd2ff")
OUTLINE = QColor(0, 0, 0, 235)


_TEXT_CACHE: "collections.OrderedDict[tuple, tuple[QPixmap, float, float]]" = collections.OrderedDict()
_TEXT_CACHE_MAX = 512  # rendered labels (a few KB each): corner text, letters, measurements


def outlined_pixmap(text: str, font: QFont, color: QColor = TEXT, width: float = 3.0,
                    dpr: float = 1.0) -> tuple[QPixmap, float, float]:
    """The outlined text rendered once: (pixmap, dx, dy) with (dx, dy) the offset of its top
    left from the text's baseline origin. Stroking a text path with antialiasing costs ~1 ms a
    line; a canvas repaints its corner text on every slider tick, so each distinct line is
    rendered once and blitted after (bounded LRU)."""
    key = (text, font.key(), color.rgba(), width, dpr)
    hit = _TEXT_CACHE.get(key)
    if hit is not None:
        _TEXT_CACHE.move_to_end(key)
        return hit
    path = QPainterPath()
    path.addText(QPointF(0, 0), font, text)
    pad = width + 1.0
    br = path.boundingRect().adjusted(-pad, -pad, pad, pad)
    dx, dy = math.floor(br.left()), math.floor(br.top())
    w, h = max(1, math.ceil(br.right()) - dx), max(1, math.ceil(br.bottom()) - dy)
    img = QImage(int(w * dpr), int(h * dpr), QImage.Format.Format_ARGB32_Premultiplied)
    img.setDevicePixelRatio(dpr)
    img.fill(0)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.translate(-dx, -dy)
    pen = QPen(OUTLINE, width)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.strokePath(path, pen)
    p.fillPath(path, color)
    p.end()
    hit = (QPixmap.fromImage(img), float(dx), float(dy))
    _TEXT_CACHE[key] = hit
    while len(_TEXT_CACHE) > _TEXT_CACHE_MAX:
        _TEXT_CACHE.popitem(last=False)
    return hit


def draw_outlined(painter: QPainter, x: float, y: float, text: str, color: QColor = TEXT,
                  width: float = 3.0) -> None:
    """Text at baseline (x, y) with a dark outline: legible on any image (white or black)."""
    dev = painter.device()
    dpr = float(dev.devicePixelRatioF()) if dev is not None else 1.0
    pm, dx, dy = outlined_pixmap(text, painter.font(), color, width, dpr)
    painter.drawPixmap(QPointF(round(x + dx), round(y + dy)), pm)


def _corner_text(canvas, painter: QPainter, vr, font: QFont) -> int:
    fm = painter.fontMetrics()
    lh = fm.height()
    ann = dict(canvas.annotations)
    bl = list(ann.get("bottom_left", []))
    win = canvas.current_window()
    if win is not None and canvas.frame is not None:
        bl.append(f"W {win.width:.0f}  L {win.center:.0f}" + (f"  ({win.name})" if win.name else ""))
        bl.append(f"Zoom {canvas.zoom() * 100:.0f}%" + ("  inverted" if canvas.user_invert else ""))
    br = list(ann.get("bottom_right", []))
    if canvas._pixel_text:
        br.append(canvas._pixel_text)
    top = lh + 6 + (26 if canvas.banner else 0)
    corners = (
        (ann.get("top_left", []), True, top),
        (ann.get("top_right", []), False, top),
        (bl, True, None),
        (br, False, None),
    )
    for lines, left, y0 in corners:
        y = y0 if y0 is not None else vr.height() - 6 - lh * (len(lines) - 1)
        room = int(vr.width() * (0.62 if left else 0.36)) - 10
        for line in lines:
            line = fm.elidedText(line, Qt.TextElideMode.ElideMiddle, max(room, 20))
            w = fm.horizontalAdvance(line)
            x = 8 if left else vr.width() - 8 - w
            draw_outlined(painter, x, y, line, WARN if line.startswith("!") else TEXT)
            y += lh
    return top


def _orientation_letters(canvas, painter: QPainter, vr, font: QFont) -> None:
    o = canvas.orientation_letters()
    if o is None or not o.known:
        return
    big = QFont(font)
    big.setPointSize(font.pointSize() + 4)
    big.setBold(True)
    painter.setFont(big)
    fm = painter.fontMetrics()
    color = QColor("#ffe27a") if not o.inferred else QColor(255, 226, 122, 170)
    # at the edges of the image as shown (inside the viewport), centred on each side
    img = canvas.mapFromScene(canvas.image_item.sceneBoundingRect()).boundingRect()
    r = QRectF(img).intersected(QRectF(vr))
    if r.isEmpty():
        r = QRectF(vr)
    cx, cy = r.center().x(), r.center().y()
    asc = fm.ascent()
    top_min = 8 + asc + (26 if canvas.banner else 0)
    for text, x, y in ((o.left, max(10, r.left() + 8), cy + asc / 2),
                       (o.right, min(vr.width() - 10, r.right() - 8) - fm.horizontalAdvance(o.right), cy + asc / 2),
                       (o.top, cx - fm.horizontalAdvance(o.top) / 2, max(top_min, r.top() + 6 + asc)),
                       (o.bottom, cx - fm.horizontalAdvance(o.bottom) / 2,
                        min(vr.height() - 8 - fm.descent(), r.bottom() - 6 - fm.descent()))):
        if text:
            draw_outlined(painter, x, y, text, color, width=3.5)
    painter.setFont(font)


def _measurements(canvas, painter: QPainter, font: QFont) -> None:
    items = [m for _id, m in canvas.measurements]
    handler = canvas.tool_handler
    preview = handler.preview(canvas) if handler is not None else None
    if preview is not None:
        items.append(preview)
    if not items:
        return
    painter.setFont(font)
    for m in items:
        pts = [canvas.view_point(*p) for p in m.points]
        pen = QPen(MEASURE, 2)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if m.kind in ("rect", "ellipse") and len(pts) == 2:
            r = QRectF(pts[0], pts[1]).normalized()
            painter.drawRect(r) if m.kind == "rect" else painter.drawEllipse(r)
            text = getattr(m, "display_text", None) or m.text
            lh = painter.fontMetrics().height()
            parts = text.split("  ")  # mean / SD / min / max / area: two per line, under the shape
            lines = ["  ".join(parts[i:i + 2]) for i in range(0, len(parts), 2)]
            for j, line in enumerate(lines):
                draw_outlined(painter, r.left(), r.bottom() + lh * (j + 1), line, MEASURE)
            continue
        else:
            segs = [(pts[0], pts[1]), (pts[2], pts[3])] if m.kind == "cobb" and len(pts) == 4 else \
                list(zip(pts, pts[1:]))
            for a, b in segs:
                painter.drawLine(a, b)
            for p in pts:
                painter.drawEllipse(p, 3, 3)
            anchor = QPointF(pts[-1].x() + 8, pts[-1].y() - 8) if m.kind != "angle" else \
                QPointF(pts[1].x() + 8, pts[1].y() + 16)
        text = getattr(m, "display_text", None) or m.text
        draw_outlined(painter, anchor.x(), anchor.y(), text, MEASURE)


def paint_foreground(canvas, painter: QPainter) -> None:
    painter.save()
    painter.resetTransform()
    vr = canvas.viewport().rect()
    font = QFont()
    font.setPointSize(9)
    painter.setFont(font)
    lh = painter.fontMetrics().height()
    ann = canvas.annotations
    top = _corner_text(canvas, painter, vr, font)
    if canvas.frame is not None:
        _orientation_letters(canvas, painter, vr, font)
        _measurements(canvas, painter, font)
    if canvas.banner:
        painter.fillRect(0, 0, vr.width(), 24, QColor(170, 90, 0, 215))
        painter.setPen(QColor("#ffffff"))
        bold = QFont(font)
        bold.setBold(True)
        painter.setFont(bold)
        text = painter.fontMetrics().elidedText(canvas.banner, Qt.TextElideMode.ElideRight, vr.width() - 16)
        painter.drawText(QRectF(8, 0, vr.width() - 16, 24),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        painter.setFont(font)
    indicator = canvas.orientation_indicator() if canvas.frame is not None else ""
    if indicator:  # orientation safety: a rotated or flipped image says so, in the centre top
        bold = QFont(font)
        bold.setBold(True)
        painter.setFont(bold)
        fmb = painter.fontMetrics()
        tw = fmb.horizontalAdvance(indicator) + 16
        n_lines = max(len(ann.get("top_left", [])), len(ann.get("top_right", [])))
        y0 = top - lh + 4 + lh * n_lines + 4  # below the corner text, never over it
        box = QRectF(max(4.0, (vr.width() - tw) / 2), y0, min(tw, vr.width() - 8), fmb.height() + 6)
        painter.fillRect(box, QColor(20, 20, 20, 220))
        painter.setPen(QPen(QColor("#ffd24d"), 2))
        painter.drawRect(box)
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, indicator)
        painter.setFont(font)
    if canvas.message:
        painter.setPen(QColor("#9aa3ad"))
        painter.drawText(QRectF(vr), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, canvas.message)
    if canvas._rubber is not None:
        r = canvas.mapFromScene(canvas.image_item.mapToScene(canvas._rubber)).boundingRect()
        painter.setPen(QPen(QColor("#6bcf8f"), 1, Qt.PenStyle.DashLine))
        painter.drawRect(r)
    if canvas.crosshair is not None and canvas.frame is not None:
        h, w = canvas.frame.shape
        p = canvas.view_point(canvas.crosshair[0] * w, canvas.crosshair[1] * h)
        painter.setPen(QPen(QColor(255, 210, 77, 200), 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(0, p.y()), QPointF(vr.width(), p.y()))
        painter.drawLine(QPointF(p.x(), 0), QPointF(p.x(), vr.height()))
    if canvas.lens is not None and canvas.frame is not None:
        _lens(canvas, painter, canvas.lens)
    if canvas.active:
        painter.setPen(QPen(QColor("#3d6d99"), 2))
        painter.drawRect(vr.adjusted(1, 1, -1, -1))
    painter.restore()



LENS_RADIUS = 90
LENS_ZOOM = 3.0


def _lens(canvas, painter: QPainter, at: QPointF) -> None:
    """A round magnifier (LENS_ZOOM x the current zoom) centred on `at`: the image drawn again
    with the view's own transform (so rotation and flips hold), scaled about the cursor."""
    from PySide6.QtGui import QTransform

    pm = canvas.image_item.pixmap()
    if pm.isNull():
        return
    painter.save()
    circle = QPainterPath()
    circle.addEllipse(at, LENS_RADIUS, LENS_RADIUS)
    painter.setClipPath(circle)
    painter.fillPath(circle, QColor(0, 0, 0))
    about = QTransform().translate(at.x(), at.y()).scale(LENS_ZOOM, LENS_ZOOM).translate(-at.x(), -at.y())
    to_view = canvas.image_item.sceneTransform() * canvas.viewportTransform() * about
    painter.setTransform(to_view)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    region = None
    if canvas.image_item.level > 1:  # the shown image is a reduced level: the lens is full resolution
        inv, ok = to_view.inverted()
        if ok:
            r = inv.mapRect(QRectF(at.x() - LENS_RADIUS, at.y() - LENS_RADIUS, 2 * LENS_RADIUS, 2 * LENS_RADIUS))
            x0, y0 = int(math.floor(r.left())) - 1, int(math.floor(r.top())) - 1
            region = canvas.display_region(x0, y0, int(math.ceil(r.right())) + 1, int(math.ceil(r.bottom())) + 1)
            x0, y0 = max(0, x0), max(0, y0)
    if region is not None:
        from radview.gui.canvas import gray_qimage

        painter.drawImage(QPointF(x0, y0), gray_qimage(region))
    else:
        canvas.image_item.paint(painter, None)
    painter.resetTransform()
    painter.setClipping(False)
    painter.setPen(QPen(QColor("#ffd24d"), 2))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawEllipse(at, LENS_RADIUS, LENS_RADIUS)
    painter.restore()
