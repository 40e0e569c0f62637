"""Export each format, import it into a fresh store: the same labels come back."""
from __future__ import annotations

import csv
import json

import pytest

from radview.cli import main
from radview.export import export_labels, import_labels
from radview.io.labels import read_mura_csv, read_rsna_csv
from radview.store import LabelStore
from radview.types import Box, Label


def _values(labels: dict[str, Label]) -> dict[str, tuple]:
    return {k: (v.value, v.boxes) for k, v in labels.items()}


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "a.sqlite", reader="alice")
    yield s
    s.close()


def _fresh(tmp_path, name="b.sqlite"):
    return LabelStore(tmp_path / name, reader="bob")


def test_mura_round_trip(store, tmp_path):
    store.set_source_labels({
        "valid/XR_WRIST/patient11185/study1_positive": Label("abnormal", source="mura-folder"),
        "train/XR_ELBOW/patient00002/study1_negative": Label("normal", source="mura-folder"),
        "XR_HAND/patient00003/study2_negative": Label("normal", source="mura-folder"),
        "1.2.840.99.1": Label("abnormal", source="dicom"),  # not a MURA study: skipped
    }, level="study")
    store.set_label("train/XR_ELBOW/patient00002/study1_negative", "abnormal", level="study")
    c = store.set_label("XR_HAND/patient00003/study2_negative", "abnormal", level="study")
    store.undo(c.id)
    res = export_labels(store, "mura", tmp_path / "mura.csv")
    assert res.rows == 3 and res.skipped == {"not a MURA study": 1}
    rows = list(csv.reader(open(tmp_path / "mura.csv")))
    assert ["train/XR_ELBOW/patient00002/study1_negative/", "1"] in rows
    assert len(read_mura_csv(tmp_path / "mura.csv")) == 3  # the io reader accepts our file
    with _fresh(tmp_path) as b:
        imp = import_labels(b, tmp_path / "mura.csv", "mura")
        assert imp.labels == 3
        want = {k: v for k, v in _values(store.labels("study")).items() if k != "1.2.840.99.1"}
        assert _values(b.labels("study")) == want
        assert b.label("valid/XR_WRIST/patient11185/study1_positive", "study").source == "import:mura"
        assert b.pending() == []  # imports are source labels, not corrections


def test_rsna_round_trip_with_corrections(store, tmp_path):
    root = tmp_path / "images"
    k = lambda pid: str(root / f"{pid}.dcm")  # noqa: E731
    store.set_source_labels({
        k("p1"): Label("pneumonia", (Box(10, 20, 30, 40), Box(100, 120, 50, 60.5)), "rsna-csv"),
        k("p2"): Label("normal", (), "rsna-csv"),
        k("p3"): Label("normal", (), "rsna-csv"),
        k("p4"): Label("pneumonia", (Box(1, 1, 2, 2),), "rsna-csv"),
    }, boxes_known=True)
    store.set_source_labels({k("other"): Label("chest", source="class-folder")})  # not detection
    store.set_boxes(k("p1"), [Box(10, 20, 35, 45)])                 # resized, one deleted
    store.set_boxes(k("p3"), [Box(5, 6, 7, 8)])                      # a missed opacity
    store.set_label(k("p3"), "pneumonia")
    store.set_boxes(k("p4"), [])                                    # positive call, no box
    res = export_labels(store, "rsna", tmp_path / "rsna.csv")
    assert res.rows == 4
    text = (tmp_path / "rsna.csv").read_text().splitlines()
    assert text[0] == "patientId,x,y,width,height,Target"
    assert "p2,,,,,0" in text and "p4,,,,,1" in text and "p1,10,20,35,45,1" in text
    with _fresh(tmp_path) as b:
        import_labels(b, tmp_path / "rsna.csv", "rsna", root=root)
        want = {kk: v for kk, v in _values(store.labels("image")).items() if not kk.endswith("other.dcm")}
        assert _values(b.labels("image")) == want
        assert all(s.boxes_known for s in b.states("image").values())


def test_rsna_import_matches_scanned_files_by_patient_id(store, tmp_path):
    path = "/data/rsna/stage_2_train_images/abc-1.dcm"
    store.set_items([("image", path, None, "", "", 1024, 1024, "{}")])
    f = tmp_path / "labels.csv"
    f.write_text("patientId,x,y,width,height,Target\nabc-1,1,2,3,4,1\nzzz,,,,,0\n")
    res = import_labels(store, f, "rsna")
    assert (res.labels, res.matched) == (2, 1)
    assert store.label(path).boxes == (Box(1, 2, 3, 4),)
    assert store.label("zzz").value == "normal"


def test_coco_round_trip(store, tmp_path):
    import numpy as np
    from PIL import Image

    from tests.dicom_factory import write_dicom

    root = tmp_path / "imgs"
    a, b_, c = str(root / "a.png"), str(root / "sub" / "b.dcm"), str(root / "c.png")
    store.set_items([("image", a, None, "", "", 640, 480, "{}")])  # the size the scan saw
    # sizes the scan did not record come from the files (PNG and DICOM headers)
    write_dicom(b_, np.zeros((30, 40), np.uint16))
    Image.fromarray(np.zeros((21, 33), np.uint8)).save(c)
    store.set_source_labels({a: Label("pneumonia", (Box(1, 2, 3, 4, "opacity"),), "coco"),
                             b_: Label("normal", (), "coco")}, boxes_known=True)
    store.set_source_labels({c: Label("chest", source="class-folder")})
    store.set_boxes(a, [Box(1, 2, 3, 4, "opacity"), Box(50, 60, 70, 80, "nodule", 0.75)])
    res = export_labels(store, "coco", tmp_path / "coco.json", root=root)
    doc = json.loads((tmp_path / "coco.json").read_text())
    assert res.rows == 3 and {i["file_name"] for i in doc["images"]} == {"a.png", "sub/b.dcm", "c.png"}
    assert [c_["name"] for c_ in doc["categories"]] == ["nodule", "opacity"]
    ann = {tuple(x["bbox"]): x for x in doc["annotations"]}
    assert ann[(50, 60, 70, 80)]["score"] == 0.75 and ann[(1, 2, 3, 4)]["area"] == 12
    size = {i["file_name"]: (i["width"], i["height"]) for i in doc["images"]}
    assert size == {"a.png": (640, 480), "sub/b.dcm": (40, 30), "c.png": (33, 21)}
    with _fresh(tmp_path) as b:
        import_labels(b, tmp_path / "coco.json", "coco", root=root)
        assert _values(b.labels("image")) == _values(store.labels("image"))
        assert b.state(c).boxes_known is False and b.state(b_).boxes_known


def test_full_json_round_trip_keeps_history(store, tmp_path):
    store.set_items([("study", "S1", None, "P1", "XR_WRIST", None, None, '{"layout": "mura"}'),
                     ("image", "/x/1.png", "S1", "P1", "XR_WRIST", 10, 20, "{}")])
    store.set_source_labels({"S1": Label("normal", source="mura-csv")}, level="study")
    store.set_source_labels({"/x/1.png": Label(None, (Box(1, 1, 1, 1),), "rsna-csv")},
                            boxes_known=True)
    e1 = store.set_label("S1", "abnormal", level="study", note="fracture", model="mura",
                         model_version="1.0", model_output="normal")
    e2 = store.set_boxes("/x/1.png", [Box(2, 2, 2, 2)], model_output=Box(2, 2, 2, 2, score=0.9))
    u = store.undo(e2.id)
    store.undo(u.id)  # redo
    store.exclude("/x/1.png", reason="bad_image")
    store.mark_consumed([e1.id], "run-7")
    export_labels(store, "json", tmp_path / "all.json")
    doc = json.loads((tmp_path / "all.json").read_text())
    assert doc["format"] == "radview-labels" and len(doc["corrections"]) == 5
    assert doc["corrections"][2]["inverse_of_uid"] == e2.uid
    with _fresh(tmp_path) as b:
        res = import_labels(b, tmp_path / "all.json", "json")
        assert res.events == 5
        for level in ("study", "image"):
            assert b.labels(level) == store.labels(level)
            assert b.states(level) == store.states(level)
        ha, hb = store.history(), b.history()
        strip = lambda e: (e.uid, e.key, e.level, e.kind, e.old_value, e.new_value, e.reader,  # noqa: E731
                           e.time, e.reason, e.note, e.model_output, e.exclude_from_training,
                           e.consumed_by_run)
        assert [strip(e) for e in ha] == [strip(e) for e in hb]
        assert [e.uid for e in b.pending()] == [e.uid for e in store.pending()]
        assert b.items("image") == store.items("image")
        assert import_labels(b, tmp_path / "all.json", "json").events == 0  # idempotent


def test_generic_csv_import_levels(store, tmp_path):
    (tmp_path / "imgs").mkdir()
    f = tmp_path / "labels.csv"
    f.write_text("path,label\nimgs/a.png,chest\n/abs/MURA-v1.1/valid/XR_HAND/patient9/study1_negative,"
                 "abnormal\n")
    res = import_labels(store, f, "csv")
    assert res.labels == 2
    assert store.label(str(tmp_path / "imgs" / "a.png")).value == "chest"
    assert store.label("valid/XR_HAND/patient9/study1_negative", "study").value == "abnormal"


def test_bad_files_name_file_and_reason(store, tmp_path):
    from radview.io.labels import LabelFileError

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LabelFileError, match="bad.json"):
        import_labels(store, bad, "coco")
    other = tmp_path / "other.json"
    other.write_text('{"format": "something"}')
    with pytest.raises(LabelFileError, match="not a radview JSON"):
        import_labels(store, other, "json")
    with pytest.raises(LabelFileError, match="no such file"):
        import_labels(store, tmp_path / "missing.csv", "rsna")


def test_cli_import_and_export(tmp_path, radview_home, capsys):
    f = tmp_path / "stage_2_train_labels.csv"
    f.write_text("patientId,x,y,width,height,Target\np1,1,2,3,4,1\np1,5,6,7,8,1\np2,,,,,0\n")
    assert main(["import-labels", str(f)]) == 0  # format guessed: rsna
    assert "imported 2 labels (rsna)" in capsys.readouterr().out
    out = tmp_path / "out.csv"
    assert main(["export", "--format", "rsna", "--out", str(out)]) == 0
    assert "wrote 3 rows" in capsys.readouterr().out
    assert read_rsna_csv(out) == read_rsna_csv(f)
    assert (radview_home / "labels.sqlite").exists()
    assert main(["import-labels", str(tmp_path / "nope.csv"), "--format", "rsna"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("patientId,x,y,width,height,Target\np1,1,2,3,4,maybe\n")
    assert main(["import-labels", str(bad), "--format", "rsna"]) == 2
    assert "line 2" in capsys.readouterr().err


def test_cli_export_without_store_and_to_bad_place(tmp_path, capsys):
    assert main(["export", "--format", "json", "--out", str(tmp_path / "x.json")]) == 2
    assert "no label store" in capsys.readouterr().err
    with LabelStore() as s:
        s.set_label("img", "chest")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", "--format", "json", "--out", str(blocker / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "x.json" in err and "cannot write" in err


@pytest.mark.shared
def test_real_rsna_csv_round_trip(shared_data, tmp_path):
    src = shared_data / "rsna-pneumonia" / "stage_2_train_labels.csv"
    with LabelStore(tmp_path / "a.sqlite") as a:
        res = import_labels(a, src, "rsna")
        assert res.labels == 26684
        export_labels(a, "rsna", tmp_path / "out.csv")
    assert read_rsna_csv(tmp_path / "out.csv") == read_rsna_csv(src)
    rows = lambda p: sorted(  # noqa: E731
        (r["patientId"], *(float(r[c]) if r[c] else None for c in ("x", "y", "width", "height")),
         r["Target"]) for r in csv.DictReader(open(p)))
    assert rows(tmp_path / "out.csv") == rows(src)  # row for row, boxes in any order


def test_coco_sizes_rounding_and_filters_by_space_and_folder(store, tmp_path):
    import numpy as np
    from PIL import Image

    from radview.export import iter_export

    one, two = tmp_path / "one", tmp_path / "two"
    paths = {}
    for folder, name, shape in ((one, "p1.png", (50, 70)), (two, "p2.png", (64, 32))):
        folder.mkdir()
        paths[name] = str(folder / name)
        Image.fromarray(np.zeros(shape, np.uint8)).save(paths[name])
    box = Box(303.89677419354825, 10.04, 20.25, 7.7777, "opacity")
    store.set_source_labels({paths["p1.png"]: Label("pneumonia", (box,), "rsna-csv",
                                                    "rsna-pneumonia"),
                             paths["p2.png"]: Label("chest", source="class-folder",
                                                    space="folder:two")}, boxes_known=True)
    steps = list(iter_export(store, "coco", tmp_path / "all.json"))
    assert all(p.payload is None for p in steps[:-1]) and steps[-1].payload.rows == 2
    doc = json.loads((tmp_path / "all.json").read_text())
    assert {(i["width"], i["height"]) for i in doc["images"]} == {(70, 50), (32, 64)}
    [ann] = doc["annotations"]
    assert ann["bbox"] == [303.9, 10, 20.2, 7.8] and ann["area"] == round(20.2 * 7.8, 2)
    res = export_labels(store, "coco", tmp_path / "rsna.json", space="rsna-pneumonia")
    names = [i["file_name"] for i in json.loads((tmp_path / "rsna.json").read_text())["images"]]
    assert res.rows == 1 and names == [paths["p1.png"]] and res.space == "rsna-pneumonia"
    res = export_labels(store, "coco", tmp_path / "two.json", folder=two)
    names = [i["file_name"] for i in json.loads((tmp_path / "two.json").read_text())["images"]]
    assert res.rows == 1 and names == [paths["p2.png"]]
    assert export_labels(store, "coco", tmp_path / "none.json", space="rsna-pneumonia",
                         folder=two).rows == 0
    # RSNA CSV: 0.1 px as well
    export_labels(store, "rsna", tmp_path / "r.csv", space="rsna-pneumonia")
    assert (tmp_path / "r.csv").read_text().splitlines()[1] == "p1,303.9,10,20.2,7.8,1"
    # the CLI takes the same filters, and names an unknown space
    from radview.paths import store_db_path  # noqa: F401 - the CLI default is not used here
    rc = main(["export", "--format", "coco", "--out", str(tmp_path / "cli.json"), "--store",
               str(store.path), "--space", "folder:two", "--folder", str(two)])
    assert rc == 0
    assert len(json.loads((tmp_path / "cli.json").read_text())["images"]) == 1
    assert main(["export", "--format", "coco", "--out", str(tmp_path / "x.json"), "--store",
                 str(store.path), "--space", "mura"]) == 2


def test_coco_skips_an_image_whose_size_is_unknown_with_the_reason(store, tmp_path):
    store.set_source_labels({str(tmp_path / "gone.png"): Label("chest", source="class-folder")})
    res = export_labels(store, "coco", tmp_path / "c.json")
    assert res.rows == 0 and res.skipped == {"image size unknown: no such file": 1}
