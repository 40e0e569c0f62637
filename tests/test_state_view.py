"""The Qt-free view state: events per field, geometry reset per study, grids of any size,
compact CAMs."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from radview.state import (IDENTITY, Geometry, Overlays, ViewState, compact_cam, grid_shape,
                           orientation_text)
from radview.types import CamMap, ImageRef, Label, Prediction, Study, View


def _study(key: str, n: int) -> Study:
    return Study(key=key, views=tuple(View(ImageRef(f"/d/{key}/{i}.png")) for i in range(n)))


def _recorder(state: ViewState, name: str) -> list:
    got: list = []
    state.events[name].connect(lambda *a: got.append(a))
    return got


def test_rotation_and_flip_reset_on_the_next_study():
    s = ViewState()
    s.set_study(_study("a", 2))
    geo = _recorder(s, "geometry")
    s.rotate(0, 90)
    s.flip(1, horizontal=True)
    assert s.geometry_of(0).rotation == 90 and s.geometry_of(1).flip_h
    assert orientation_text(s.geometry_of(0)) == "ROTATED 90°"
    assert "FLIPPED L-R" in orientation_text(s.geometry_of(1))
    assert geo[-2:] == [(0, Geometry(rotation=90)), (1, Geometry(flip_h=True))]
    geo.clear()
    s.set_study(_study("b", 3))
    assert all(s.geometry_of(i) == IDENTITY for i in range(3))
    assert geo == [(i, IDENTITY) for i in range(3)]  # every canvas hears the reset
    assert orientation_text(s.geometry_of(0)) == ""


def test_linked_geometry_carries_over_when_the_user_asks():
    s = ViewState()
    s.link_geometry = True
    s.set_study(_study("a", 1))
    s.rotate(0, 180)
    s.set_study(_study("b", 2))
    assert s.geometry_of(0).rotation == 180 and s.geometry_of(1).rotation == 180


def test_same_study_keeps_geometry_and_moves_view():
    s = ViewState()
    st = _study("a", 3)
    s.set_study(st)
    s.rotate(2, 270)
    views = _recorder(s, "view")
    s.set_study(st, 2)
    assert s.geometry_of(2).rotation == 270 and views == [(2,)]


def test_pixel_readout_and_windows_cleared_on_study_change():
    from radview.types import Window

    s = ViewState()
    s.set_study(_study("a", 1))
    s.set_pixel("x 1 y 2 stored 40")
    s.set_window(0, Window(40, 400))
    px = _recorder(s, "pixel")
    s.set_study(_study("b", 1))
    assert s.pixel == "" and px == [("",)] and s.window_of(0) is None


@pytest.mark.parametrize("n,shape", [(1, (1, 1)), (2, (1, 2)), (3, (2, 2)), (4, (2, 2)), (5, (2, 3)),
                                     (6, (2, 3)), (7, (3, 3)), (9, (3, 3)), (10, (3, 4))])
def test_grid_shape_holds_every_view(n, shape):
    rows, cols = grid_shape(n)
    assert (rows, cols) == shape and rows * cols >= n


def test_five_views_are_all_shown():
    s = ViewState()
    s.set_study(_study("a", 5))
    assert s.views_shown() == [0, 1, 2, 3, 4]
    s.set_grid(False)
    s.set_view(4)
    assert s.views_shown() == [4]


def test_overlay_events_name_the_changed_fields():
    s = ViewState(Overlays(show_cam=False))
    got = _recorder(s, "overlays")
    s.set_overlays(show_cam=True, opacity=0.45)  # opacity unchanged
    s.set_overlays(show_cam=True)                  # nothing changed: no event
    assert len(got) == 1 and got[0][1] == ("show_cam",) and got[0][0].show_cam
    with pytest.raises(TypeError):
        s.set_overlays(bogus=1)


def test_predictions_cams_and_labels_by_key_and_folder_reset():
    s = ViewState(max_cams=3)
    s.set_model("m")
    ref = ImageRef("/d/x.png")
    s.put_prediction(Prediction(ref, "m", "1", ("a", "b"), (0.2, 0.8)))
    for i in range(5):
        s.put_cam(("m", f"k{i}", ""), CamMap(ImageRef(f"k{i}"), np.full((2500, 2048), 0.5, np.float32)))
    assert len(s.cams) == 3 and ("m", "k0", "") not in s.cams  # bounded, oldest dropped
    cam = s.cams[("m", "k4", "")]
    assert cam.data.dtype == np.uint8 and max(cam.data.shape) <= 512
    assert s.cam_bytes() < 3 * 512 * 512
    labels = _recorder(s, "label")
    s.set_label("k", Label("abnormal"))
    assert labels == [("k",)] and s.label_of("k").value == "abnormal"
    s.set_folder("/new")
    assert not s.predictions and not s.cams and not s.labels and s.study is None


def test_compact_cam_keeps_the_values_the_display_uses():
    data = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    out = compact_cam(CamMap(ImageRef("x"), data))
    assert out.data.shape == (64, 64)
    assert np.array_equal(out.data, (data * 255 + 0.5).astype(np.uint8))
    big = compact_cam(CamMap(ImageRef("x"), np.ones((2000, 1000), np.float32)))
    assert big.data.shape == (500, 250) and int(big.data.min()) == 255


def test_bound_method_subscribers_are_weak():
    s = ViewState()

    class Widget:
        def __init__(self):
            self.seen = []

        def on_study(self, st):
            self.seen.append(st)

    w = Widget()
    s.events.study.connect(w.on_study)
    s.set_study(_study("a", 1))
    assert len(w.seen) == 1
    del w
    gc.collect()
    s.set_study(_study("b", 1))  # the dead subscriber is skipped, not called
    assert len(s.events.study) == 0


def test_a_subscriber_error_is_not_swallowed():
    s = ViewState()
    s.events.study.connect(lambda st: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        s.set_study(_study("a", 1))
