"""Cine for multi-frame images: a bar under the viewer (play / pause, frame slider, frame n/N)
shown when the active view's file has more than one frame. Frames come from the viewer's
FrameStore (decoded on the io thread, LRU-cached), played at the file's frame time
(FrameTime in ms, else 1000 / CineRate, else 10 frames/s). Keys: X play/pause, "." next frame,
"," previous frame (remappable, from the shortcut table)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QLabel, QSlider, QToolBar, QToolButton

from radview.types import ImageRef

DEFAULT_MS = 100


def frame_time_ms(meta: dict | None) -> float:
    """The file's frame time in ms (FrameTime, else CineRate in frames/s), else 100 ms."""
    meta = meta or {}
    for kw, conv in (("FrameTime", float), ("CineRate", lambda v: 1000.0 / float(v))):
        v = meta.get(kw)
        try:
            ms = conv(v) if v not in (None, "") else None
        except (TypeError, ValueError, ZeroDivisionError):
            ms = None
        if ms is not None and 1.0 <= ms <= 10000.0:
            return ms
    return float(DEFAULT_MS)


class CineController(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.bar = bar = QToolBar("Cine", window)
        bar.setObjectName("cine")
        bar.setMovable(False)
        self.play_button = QToolButton(bar)
        self.play_button.setText("▶")
        self.play_button.setToolTip("Play / pause (X)")
        self.play_button.setCheckable(True)
        self.slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.slider.setMinimum(0)
        self.label = QLabel("", bar)
        self.label.setMinimumWidth(150)
        bar.addWidget(self.play_button)
        bar.addWidget(self.slider)
        bar.addWidget(self.label)
        window.addToolBar(Qt.ToolBarArea.BottomToolBarArea, bar)
        bar.setVisible(False)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.path: str | None = None
        self.n = 1
        self.index = 0
        self._waiting: str | None = None
        self.play_button.toggled.connect(self.set_playing)
        self.slider.valueChanged.connect(self.show_frame)
        window.viewer.frameShown.connect(self._frame_shown)
        window.frames.loaded.connect(self._loaded)
        window.state.events.study.connect(lambda _s: self.reset())

    # ------------------------------------------------------------------ what is shown
    def reset(self) -> None:
        self.set_playing(False)
        self.path, self.n, self.index = None, 1, 0
        self.bar.setVisible(False)

    def _frame_shown(self, view_index: int, frame) -> None:
        if view_index != self.window.viewer.current or frame.ref.frame != 0:
            return
        if frame.n_frames <= 1:
            if frame.ref.path != self.path:
                self.reset()
            return
        if frame.ref.path == self.path:
            return
        self.set_playing(False)
        self.path, self.n, self.index = frame.ref.path, int(frame.n_frames), 0
        self.timer.setInterval(int(round(frame_time_ms(frame.meta))))
        self.slider.blockSignals(True)
        self.slider.setMaximum(self.n - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.bar.setVisible(True)
        self._label()

    def _label(self) -> None:
        fps = 1000.0 / max(self.timer.interval(), 1)
        self.label.setText(f"frame {self.index + 1}/{self.n}  ({fps:.3g} fps)")

    # ------------------------------------------------------------------ control
    def set_playing(self, on: bool) -> None:
        if on and self.path is None:
            on = False
        if self.play_button.isChecked() != on:
            self.play_button.blockSignals(True)
            self.play_button.setChecked(on)
            self.play_button.blockSignals(False)
        self.play_button.setText("⏸" if on else "▶")
        self.timer.start() if on else self.timer.stop()

    def toggle(self) -> None:
        self.set_playing(not self.timer.isActive())

    def step(self, delta: int) -> None:
        if self.path is not None:
            self.slider.setValue((self.index + delta) % self.n)

    def _tick(self) -> None:
        if self._waiting is None:  # never queue ahead of the decoder
            self.step(1)

    def show_frame(self, i: int) -> None:
        if self.path is None:
            return
        self.index = int(i)
        ref = ImageRef(self.path, self.index)
        frame = self.window.frames.get(ref)
        if frame is None:
            self._waiting = ref.key
        else:
            self._put(frame)
        self._label()

    def _loaded(self, key: str, frame, error) -> None:
        if key != self._waiting:
            return
        self._waiting = None
        if error is not None:
            self.set_playing(False)
            self.window.notify(f"frame {self.index + 1}: {error}", where=self.path or "cine")
        elif frame.ref.frame == self.index:
            self._put(frame)

    def _put(self, frame) -> None:
        self._waiting = None
        c = self.window.viewer.active_canvas()
        if c.frame is None or c.frame.ref.path != frame.ref.path:
            return
        ann = {k: list(v) for k, v in c.annotations.items()}
        c.set_frame(frame, window=c.window, keep_view=True)
        top = [x for x in ann.get("top_left", []) if not x.startswith("frame ")]
        ann["top_left"] = top + [f"frame {frame.ref.frame + 1}/{self.n}"]
        c.annotations.update(ann)
        c.viewport().update()
