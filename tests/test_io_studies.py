"""Folder scans: MURA, class folders, flat, DICOM grouping, RSNA pairing, label CSVs, the
incremental index."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from radview.io import scan
from radview.io.labels import read_label_csv, read_mura_csv, read_rsna_csv

from dicom_factory import write_dicom


def _png(path, value=100, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return path


def test_mura_tree_grouped_and_labelled(tmp_path):
    root = tmp_path / "MURA-v1.1"
    for split, stype, patient, study, n in [("train", "XR_WRIST", "patient00001", "study1_positive", 3),
                                             ("train", "XR_WRIST", "patient00001", "study2_negative", 1),
                                             ("valid", "XR_ELBOW", "patient11185", "study1_negative", 2)]:
        for i in range(1, n + 1):
            _png(root / split / stype / patient / study / f"image{i}.png")
    (root / "valid_labeled_studies.csv").write_text("MURA-v1.1/valid/XR_ELBOW/patient11185/study1_negative/,1\n")
    r = scan(root)
    assert not r.errors
    by = {s.key: s for s in r.studies}
    s = by["train/XR_WRIST/patient00001/study1_positive"]
    assert (s.layout, s.study_type, s.patient, s.split, s.label.value) == ("mura", "XR_WRIST", "patient00001", "train", "abnormal")
    assert [os.path.basename(v.ref.path) for v in s.views] == ["image1.png", "image2.png", "image3.png"]
    assert by["train/XR_WRIST/patient00001/study2_negative"].label.value == "normal"
    elbow = by["valid/XR_ELBOW/patient11185/study1_negative"]
    assert elbow.label.value == "abnormal" and elbow.label.source == "mura-csv"  # the CSV wins over the folder name
    assert len(elbow.views) == 2


def test_class_folders_with_and_without_split(tmp_path):
    for split in ("train", "val"):
        for cls, n in (("chest", 2), ("abd", 1)):
            for i in range(n):
                _png(tmp_path / "a" / split / cls / f"{i}.png")
    r = scan(tmp_path / "a")
    assert len(r.studies) == 6 and {s.layout for s in r.studies} == {"class"}
    assert sorted((s.split, s.label.value) for s in r.studies).count(("val", "chest")) == 2
    for cls in ("cat", "dog"):
        _png(tmp_path / "b" / cls / "x.png")
    r = scan(tmp_path / "b")
    assert sorted(s.label.value for s in r.studies) == ["cat", "dog"]


def test_class_folders_inside_a_folder_that_mixes_layouts(tmp_path):
    root = tmp_path / "mixed"
    _png(root / "XR_HAND" / "patient00001" / "study1_positive" / "image1.png")
    for cls in ("abd", "chest"):
        for i in range(2):
            _png(root / "openi" / cls / f"{i}.png")
    for pid in ("patient0007", "patient0008"):  # groupings named like identifiers are not classes
        _png(root / "cases" / pid / "a.png")
    _png(root / "photos" / "1.png")             # a folder with images of its own: its sub-folders
    _png(root / "photos" / "left" / "2.png")    # are not classes either
    _png(root / "photos" / "right" / "3.png")
    (root / "dicom").mkdir()
    write_dicom(root / "dicom" / "x.dcm", np.zeros((16, 16), np.uint16))
    r = scan(root)
    assert not r.errors
    by = {os.path.relpath(v.ref.path, root): s for s in r.studies for v in s.views}
    assert by[os.path.join("openi", "abd", "0.png")].layout == "class"
    assert sorted(s.label.value for k, s in by.items() if k.startswith("openi")) == ["abd", "abd", "chest", "chest"]
    assert by[os.path.join("XR_HAND", "patient00001", "study1_positive", "image1.png")].label.value == "abnormal"
    for k in (os.path.join("cases", "patient0007", "a.png"), os.path.join("photos", "left", "2.png")):
        assert by[k].layout == "flat" and by[k].label is None, k


def test_flat_folder_one_study_per_file_and_generic_csv(tmp_path):
    for i in range(3):
        _png(tmp_path / f"img{i}.png")
    (tmp_path / "labels.csv").write_text("path,label\nimg0.png,abnormal\n" + f"{tmp_path / 'img2.png'},normal\n")
    r = scan(tmp_path)
    assert [s.layout for s in r.studies] == ["flat"] * 3
    labels = {os.path.basename(s.key): (s.label.value if s.label else None) for s in r.studies}
    assert labels == {"img0.png": "abnormal", "img1.png": None, "img2.png": "normal"}


def test_dicom_grouped_by_study_uid_and_ordered(tmp_path):
    px = np.zeros((8, 8), np.uint16)
    write_dicom(tmp_path / "x" / "b.dcm", px, study_uid="1.2.3", series_uid="1.2.3.2", instance=1)
    write_dicom(tmp_path / "x" / "a.dcm", px, study_uid="1.2.3", series_uid="1.2.3.1", instance=2)
    write_dicom(tmp_path / "x" / "c.dcm", px, study_uid="1.2.3", series_uid="1.2.3.1", instance=1)
    write_dicom(tmp_path / "y.dcm", px, study_uid="9.9", patient_id="P2", body_part="HAND")
    r = scan(tmp_path)
    by = {s.key: s for s in r.studies}
    assert set(by) == {"1.2.3", "9.9"}
    assert [os.path.basename(v.ref.path) for v in by["1.2.3"].views] == ["c.dcm", "a.dcm", "b.dcm"]
    assert by["9.9"].patient == "P2" and by["9.9"].study_type == "HAND" and by["9.9"].views[0].modality == "CR"


def _rsna_csv_rows(path):
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_rsna_layout_pairs_each_image_with_its_boxes(shared_data):
    """The 10 challenge DICOMs (boxes in their 1024 px) and the 1,286 JPEG copies at 512 px
    (boxes scaled to them in jpeg-512/labels.csv): each image gets the boxes of the nearest CSV."""
    rsna = shared_data / "rsna-pneumonia"
    labels = read_rsna_csv(rsna / "stage_2_train_labels.csv")
    assert len(labels) == 26684 and sum(len(v.boxes) for v in labels.values()) == 9555
    jpeg_rows = _rsna_csv_rows(rsna / "jpeg-512" / "labels.csv")
    expected_512 = {}
    for row in jpeg_rows:
        boxes = expected_512.setdefault(row["patientId"], [])
        if row["Target"] == "1":
            boxes.append(tuple(float(row[k]) for k in ("x", "y", "width", "height")))
    assert len(expected_512) == 1286
    for root in (rsna, rsna / "stage_2_train_images", rsna / "jpeg-512", rsna / "jpeg-512" / "images"):
        r = scan(root)  # the CSV is found beside or above the images folder
        assert not r.errors and all(s.layout == "rsna" and s.space == "rsna-pneumonia" for s in r.studies)
        dicoms = [s for s in r.studies if s.views[0].ref.path.endswith(".dcm")]
        jpegs = [s for s in r.studies if s.views[0].ref.path.endswith(".jpg")]
        assert len(dicoms) == (10 if root.name in ("rsna-pneumonia", "stage_2_train_images") else 0)
        assert len(jpegs) == (1286 if root.name != "stage_2_train_images" else 0)
        if dicoms:
            two_box = [s for s in dicoms if s.label and len(s.label.boxes) == 2]
            assert len(two_box) == 3 and all(s.label.value == "pneumonia" for s in two_box)
            assert {os.path.basename(s.views[0].ref.path)[:8] for s in two_box} == {"00436515", "00704310", "00aecb01"}
            for s in dicoms:  # the 1024 px boxes of the official CSV
                assert s.label.boxes == labels[s.patient].boxes
        if jpegs:
            assert sum(s.label.value == "pneumonia" for s in jpegs) == 331
            assert sum(len(s.label.boxes) for s in jpegs) == 529
            for s in jpegs:  # each image paired with its own (512 px) boxes, not the 1024 px ones
                pid = os.path.basename(s.views[0].ref.path)[:-4]
                assert s.patient == pid and s.views[0].label == s.label
                assert [(b.x, b.y, b.width, b.height) for b in s.label.boxes] == expected_512[pid]
                assert s.label.value == ("pneumonia" if expected_512[pid] else "normal")
                assert all(b.x + b.width <= 512 and b.y + b.height <= 512 for b in s.label.boxes)
            scaled = [s for s in jpegs if s.label.boxes and labels[s.patient].boxes]
            assert scaled and all(abs(s.label.boxes[0].width * 2 - labels[s.patient].boxes[0].width) < 1.01
                                  for s in scaled[:50] if len(s.label.boxes) == 1)


def test_rsna_jpeg_layout_generated(tmp_path):
    """The layout rule on generated files: a `*_labels.csv` with the challenge header beside an
    images folder; an image not in the CSV stays an unlabelled flat study; a CSV with another
    header is not RSNA."""
    images = tmp_path / "set" / "images"
    for pid in ("aaa-1", "bbb-2", "ccc-3"):
        _png(images / f"{pid}.png")
    (tmp_path / "set" / "train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\naaa-1,1,2,3,4,1\naaa-1,5,6,7,8,1\nbbb-2,,,,,0\n")
    r = scan(tmp_path / "set" / "images")
    by = {os.path.basename(s.key): s for s in r.studies}
    assert by["aaa-1.png"].layout == "rsna" and len(by["aaa-1.png"].label.boxes) == 2
    assert by["aaa-1.png"].label.boxes[1].x == 5 and by["aaa-1.png"].label.value == "pneumonia"
    assert by["bbb-2.png"].label.value == "normal" and by["bbb-2.png"].layout == "rsna"
    assert by["ccc-3.png"].layout == "flat" and by["ccc-3.png"].label is None
    (tmp_path / "set" / "train_labels.csv").write_text("patientId,label\naaa-1,1\n")
    r = scan(tmp_path / "set" / "images")
    assert {s.layout for s in r.studies} == {"flat"}


def test_index_is_incremental(tmp_path):
    for i in range(5):
        write_dicom(tmp_path / f"{i}.dcm", np.zeros((4, 4), np.uint16), study_uid=f"1.{i}")
    _png(tmp_path / "p.png")
    r1 = scan(tmp_path)
    assert r1.n_read == 6
    r2 = scan(tmp_path)
    assert r2.n_read == 0 and [s.key for s in r2.studies] == [s.key for s in r1.studies]
    write_dicom(tmp_path / "3.dcm", np.zeros((4, 4), np.uint16), study_uid="7.7")
    os.utime(tmp_path / "3.dcm", ns=(1, 10**18))
    r3 = scan(tmp_path)
    assert r3.n_read == 1 and "7.7" in {s.key for s in r3.studies}
    os.remove(tmp_path / "p.png")
    assert len(scan(tmp_path).studies) == 5


def test_label_readers(tmp_path):
    (tmp_path / "train_labeled_studies.csv").write_text(
        "MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/,1\n"
        "MURA-v1.1/train/XR_SHOULDER/patient00002/study1_negative/,0\n")
    m = read_mura_csv(tmp_path / "train_labeled_studies.csv")
    assert m["XR_SHOULDER/patient00001/study1_positive"].value == "abnormal"
    assert m["XR_SHOULDER/patient00002/study1_negative"].value == "normal"
    (tmp_path / "l.csv").write_text("file,class\na/b.png,chest\n/abs/c.png,abd\n")
    g = read_label_csv(tmp_path / "l.csv")
    assert g[str(tmp_path / "a" / "b.png")].value == "chest" and g["/abs/c.png"].value == "abd"


def test_single_file_scan(testdata):
    r = scan(testdata("RG3_J2KR.dcm"))
    assert len(r.studies) == 1 and r.studies[0].study_type == "EXTREMITY"


def test_index_made_by_an_older_scanner_is_rebuilt(tmp_path, radview_home, monkeypatch):
    """A cache entry written before the scanner learnt a check would hide what it finds now."""
    import radview.io.index as index

    write_dicom(tmp_path / "IM0001", np.zeros((4, 4), np.uint16), study_uid="3.3")
    assert scan(tmp_path).n_read == 1 and scan(tmp_path).n_read == 0
    monkeypatch.setattr(index, "SCANNER_VERSION", index.SCANNER_VERSION + "-next")
    r = scan(tmp_path)
    assert r.n_read == 1 and [s.key for s in r.studies] == ["3.3"]
