"""Bootstrap: QApplication, dark theme, the main window shown and painted BEFORE torch is
imported (the model executor imports it on its own thread afterwards), then the folder."""
from __future__ import annotations

import os
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


SWITCH_INTERVAL_S = 0.0005


def make_app(palette: bool = True) -> QApplication:
    # The model executor runs Python (torch module dispatch) while the GUI thread calls into Qt
    # and back into Python many times per paint, re-taking the GIL each time: with the default
    # 5 ms switch interval every re-take may wait 5 ms. 0.5 ms keeps the event loop fluid.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    app.setApplicationName("radview")
    app.setOrganizationName("radview")
    from radview.gui.theme import apply_dark_theme

    apply_dark_theme(app, palette=palette)
    return app


def boxes_settled(window) -> bool:
    """The boxes model routed to the visible study (the detector beside the heatmap model) has
    answered for it: its study prediction is in, or the executor said why it was not run (outside
    its domain, not installed, failed: radview.models.executor's Skipped). True with no such model."""
    ai = getattr(window, "ai", None)
    study = window.viewer.study
    side = ai.side_models() if ai is not None and hasattr(ai, "side_models") else ()
    if not side or study is None or not study.views:
        return True
    return all(study.key in ai.box_study or (m, study.key) in ai.skips for m in side)


class ScreenshotWaiter:
    """Polls the window until the first study is shown and its inference (and heatmaps) are in,
    and the boxes of a boxes model routed to it (`boxes_settled`), then saves a screenshot of the
    whole main window and quits with exit code 0 (2 on a model name that does not exist, 3 on
    timeout: the screenshot is saved anyway)."""

    def __init__(self, window, path: str, timeout: float):
        self.w, self.path, self.deadline = window, path, time.monotonic() + timeout
        self.settled_since: float | None = None
        self.rc = 0
        self.timer = QTimer(window)
        self.timer.timeout.connect(self._tick)
        self.timer.start(100)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.w.is_settled() and boxes_settled(self.w):
            self.settled_since = self.settled_since or now
            if now - self.settled_since < 0.3:  # let the last overlays paint
                return
        elif now < self.deadline:
            self.settled_since = None
            return
        else:
            self.rc = 3
            print("radview gui: timed out waiting for the first study; saving the screenshot anyway",
                  file=sys.stderr)
        self.timer.stop()
        if self.w.unknown_model:
            print(f"radview gui: error: unknown model {self.w.unknown_model!r}", file=sys.stderr)
            self.rc = 2
        os.makedirs(os.path.dirname(os.path.abspath(self.path)) or ".", exist_ok=True)
        if not self.w.grab().save(self.path):
            print(f"radview gui: error: cannot write {self.path}", file=sys.stderr)
            self.rc = 2
        QApplication.instance().exit(self.rc)


def run(path: str | None = None, screenshot: str | None = None, model: str | None = None,
        timeout: float = 300.0, size: tuple[int, int] | None = None) -> int:
    if screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = make_app()
    from radview.gui.main_window import MainWindow

    window = MainWindow(deferred=True)
    if size:
        window.resize(*size)
    window.show()
    app.processEvents()  # the window is painted now (Qt only: no numpy, no torch yet)
    window.build()
    window.start_background(model)
    if path is None:
        from radview.io.samples import sample_folder

        path = str(sample_folder())
    QTimer.singleShot(0, lambda: window.open_path(path))
    waiter = ScreenshotWaiter(window, screenshot, timeout) if screenshot else None
    rc = app.exec()
    window.shutdown()  # threads stopped, the training process and decoder processes ended
    window.close()
    window.deleteLater()
    app.processEvents()
    rc = waiter.rc if waiter is not None else int(rc)
    return _exit_now(rc)


def _exit_now(rc: int) -> int:
    """Everything the user made is on disk now (the store is closed, settings synced): end the
    process at once. The interpreter's own teardown of torch, Qt and numpy takes seconds on a busy
    machine and shows as a window that will not go away; nothing of value happens in it."""
    from PySide6.QtCore import QThreadPool

    from radview.store import close_stores

    QThreadPool.globalInstance().waitForDone(200)  # a scan / export step finishing its write
    close_stores()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
