"""Window presets by modality: a radiograph never gets CT windows; user presets per modality."""
from __future__ import annotations

import json

import numpy as np
import pytest

from radview.io import load_frame
from radview.io.display import display_image
from radview.presets import (
    CT_PRESETS,
    PresetsError,
    delete_user_preset,
    load_user_presets,
    presets_for,
    presets_path,
    save_user_preset,
)
from tests.dicom_factory import write_dicom


def names(presets):
    return [p.name for p in presets]


@pytest.mark.parametrize("modality", ["CR", "DX", "MG"])
def test_radiographs_get_their_own_windows_auto_and_full_range_never_ct(tmp_path, modality):
    pix = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 3) % 4000
    f = load_frame(write_dicom(tmp_path / "r.dcm", pix, modality=modality, bits_stored=12,
                               WindowCenter=[2000, 1000], WindowWidth=[4000, 500],
                               WindowCenterWidthExplanation=["NORMAL", "HARD"]))
    ps = presets_for(f)
    assert [p.source for p in ps] == ["file", "file", "auto", "full"]
    assert (ps[0].window.center, ps[0].window.width) == (2000, 4000)
    assert (ps[1].window.center, ps[1].window.width) == (1000, 500)
    full = ps[3].window
    assert full.center - full.width / 2 == pytest.approx(pix.min()) and full.center + full.width / 2 == pytest.approx(pix.max())
    assert not {n for n, _, _ in CT_PRESETS} & set(names(ps))
    # every preset shows a picture, not a black film
    for p in ps:
        img = display_image(f, window=p.window)
        assert img.std() > 10, p.name


def test_ct_gets_the_hounsfield_presets(testdata):
    f = load_frame(testdata("CT_small.dcm"))
    ps = presets_for(f)
    ct = [p for p in ps if p.source == "ct"]
    assert names(ct) == [n for n, _, _ in CT_PRESETS]
    lung = next(p for p in ct if p.name == "lung").window
    assert (lung.center, lung.width) == (-600, 1500)
    assert [p.source for p in ps[:2]] == ["auto", "full"]
    assert names(presets_for("CT"))[:len(CT_PRESETS)] == [n for n, _, _ in CT_PRESETS]
    assert presets_for("CR") == [] and presets_for("mg") == []


def test_a_real_cr_film_has_no_ct_windows(testdata):
    f = load_frame(testdata("RG1_J2KR.dcm"))
    ps = presets_for(f)
    assert [p.source for p in ps] == ["file", "auto", "full"]


def test_user_presets_are_saved_per_modality_and_survive(tmp_path):
    save_user_preset("CR", "soft", 1200, 800)
    save_user_preset("cr", "bones", 2500, 1000, "LINEAR_EXACT")
    save_user_preset("DX", "soft", 300, 100)
    save_user_preset("CR", "soft", 1300, 900)  # replaces by name
    cr = [p for p in presets_for("CR") if p.source == "user"]
    assert [(p.name, p.window.center, p.window.width) for p in cr] == [("bones", 2500, 1000), ("soft", 1300, 900)]
    assert cr[0].window.function == "LINEAR_EXACT"
    assert [p.name for p in presets_for("DX")] == ["soft"]
    assert presets_for("CT")[-1].source == "ct"  # none for CT
    f = load_frame(write_dicom(tmp_path / "x.dcm", np.zeros((8, 8), np.uint16), modality="CR"))
    assert names(presets_for(f))[-2:] == ["bones", "soft"]
    data = json.loads(presets_path().read_text())
    assert set(data) == {"CR", "DX"}
    assert delete_user_preset("CR", "bones") and not delete_user_preset("CR", "bones")
    assert [p.name for p in load_user_presets()["CR"]] == ["soft"]
    with pytest.raises(ValueError, match="width > 0"):
        save_user_preset("CR", "bad", 10, 0)


def test_png_presets_are_under_other(tmp_path):
    from PIL import Image

    p = tmp_path / "a.png"
    Image.fromarray((np.arange(100, dtype=np.uint8).reshape(10, 10))).save(p)
    save_user_preset("OT", "mine", 50, 20)
    ps = presets_for(load_frame(p))
    assert [x.source for x in ps] == ["auto", "full", "user"]


def test_a_broken_presets_file_is_reported_and_kept():
    path = presets_path()
    path.write_text('{"CR": [{"name": "soft", "center": 1, "width": 2}], oops')
    with pytest.raises(PresetsError, match="presets.json: not valid JSON"):
        presets_for("CR")
    seen = []
    assert presets_for("CT", on_error=seen.append)[0].name == "lung"
    assert len(seen) == 1 and str(path) in seen[0]
    with pytest.raises(PresetsError):
        save_user_preset("CR", "x", 1, 2)
    assert path.read_text().endswith("oops")  # never overwritten
