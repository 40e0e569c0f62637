"""De-identified exports contain no identifier (read back from disk), and pseudonyms are
consistent (keyed hash) across exports, formats and DICOM headers."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from radview.export import Deidentifier, export_labels, import_labels
from radview.export.deid import UID_RE
from radview.store import LabelStore
from radview.types import Box, Label

PHYSICIAN = "Dr. Jane Roe"


def _identifiers(ds) -> set[str]:
    """Every identifying value of a DICOM header (PS3.15 main attributes, UIDs, dates)."""
    out = set()
    for kw in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
               "SOPInstanceUID", "AccessionNumber", "InstitutionName", "ReferringPhysicianName",
               "StudyID", "PatientBirthDate"):
        v = str(ds.get(kw, "") or "").strip()
        if len(v) >= 4:
            out.add(v)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        out.add(str(meta.MediaStorageSOPInstanceUID))
    return out


def _assert_clean(text: str, identifiers: set[str], where: str) -> None:
    low = text.lower()
    for ident in identifiers:
        assert ident.lower() not in low, f"{ident!r} appears in {where}"


@pytest.fixture
def rsna_store(shared_data, tmp_path):
    """A store that scanned the real RSNA images (their headers) and holds corrections."""
    from radview.io import scan

    folder = shared_data / "rsna-pneumonia"
    result = scan(folder, use_index=False)
    # the 10 challenge DICOMs and the 1,286 JPEG copies (jpeg-512/), all paired with their boxes
    suffixes = [Path(s.views[0].ref.path).suffix for s in result.studies]
    assert (suffixes.count(".dcm"), suffixes.count(".jpg"), len(suffixes)) == (10, 1286, 1296)
    assert all(s.layout == "rsna" and s.label is not None for s in result.studies)
    store = LabelStore(tmp_path / "labels.sqlite", reader=PHYSICIAN)
    store.record_scan(result)
    views = [v for s in result.studies for v in s.views]
    pos = next(v for v in views if v.label is not None and v.label.boxes)
    neg = next(v for v in views if v.label is not None and not v.label.boxes)
    store.set_boxes(pos.ref, [*pos.label.boxes, Box(10, 10, 100, 100)],
                    note=f"patient {Path(pos.ref.path).stem} has more", model="rsna-det",
                    model_version="1")
    store.set_label(neg.ref, "pneumonia", note=f"seen by {PHYSICIAN}")
    store.set_boxes(neg.ref, [Box(300, 300, 80, 90)])
    st = result.studies[0]
    store.set_label(st.key, "pneumonia", level="study", note=f"accession for {st.patient}")
    yield store, folder, result
    store.close()


@pytest.mark.shared
def test_deidentified_exports_carry_no_identifier(rsna_store, tmp_path):
    import pydicom

    store, folder, result = rsna_store
    files = sorted((folder / "stage_2_train_images").glob("*.dcm"))
    idents = {PHYSICIAN, str(folder)}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        idents |= _identifiers(ds)
        idents.add(f.stem)
        assert f.stem == str(ds.PatientID)
    assert len(idents) >= 10 * 4
    jpegs = sorted((folder / "jpeg-512" / "images").glob("*.jpg"))
    assert len(jpegs) == 1286
    idents |= {f.stem for f in jpegs}  # the JPEGs are named by their patientIds
    n_images = len(result.studies)
    texts = {}
    for fmt in ("mura", "rsna", "coco", "json"):
        out = tmp_path / f"deid.{fmt}"
        res = export_labels(store, fmt, out, deidentify=True)
        assert res.deidentified
        texts[fmt] = out.read_text()
        _assert_clean(texts[fmt], idents, f"the de-identified {fmt} export")
    # the same exports without --deidentify do carry them (the test can fail)
    plain = tmp_path / "plain.json"
    export_labels(store, "json", plain)
    assert any(i in plain.read_text() for i in idents)
    # consistent pseudonyms: an RSNA patientId is the same in the CSV and the COCO file_name
    rsna_ids = {line.split(",")[0] for line in texts["rsna"].splitlines()[1:]}
    coco = json.loads(texts["coco"])
    coco_stems = {Path(i["file_name"]).stem for i in coco["images"]}
    assert len(rsna_ids) == n_images and rsna_ids <= coco_stems
    doc = json.loads(texts["json"])
    assert doc["deidentification"]["profile"].startswith("DICOM PS3.15")
    assert {e["reader"] for e in doc["corrections"]} == {Deidentifier.for_home().reader(PHYSICIAN)}
    assert all(e["note"] == "" for e in doc["corrections"])
    study_keys = {i["key"] for i in doc["items"] if i["level"] == "study"}
    # DICOM studies are keyed by StudyInstanceUID (-> 2.25.<hash>), the JPEG copies by their path
    # (-> pseudonymous components, the image suffix kept)
    uid_keys = {k for k in study_keys if not k.endswith(".jpg")}
    assert uid_keys and all(UID_RE.match(k) and k.startswith("2.25.") for k in uid_keys)
    from radview.export.deid import UUID_RE

    for k in study_keys - uid_keys:  # jpeg-512/images/<patientId>.jpg, every component pseudonymous
        folder, images, name = k.split("/")
        assert folder.startswith("anon-") and images.startswith("anon-") and UUID_RE.match(name[:-4])
    # a de-identified export is still a valid label file: it imports with its labels
    with LabelStore(tmp_path / "b.sqlite") as b:
        assert import_labels(b, tmp_path / "deid.rsna", "rsna").labels == n_images
        assert import_labels(b, tmp_path / "deid.json", "json").events == 4
        # RSNA rows keyed by pseudonymous patientIds, JSON items by pseudonymous paths
        assert len(b.labels("image")) == 2 * n_images


@pytest.mark.shared
def test_deidentified_dicom_files_and_consistency(shared_data, tmp_path):
    import pydicom

    deid = Deidentifier.for_home()
    again = Deidentifier.for_home()  # the key persists in RADVIEW_HOME: same pseudonyms
    files = sorted((shared_data / "rsna-pneumonia" / "stage_2_train_images").glob("*.dcm"))[:4]
    for f in files:
        src = pydicom.dcmread(f)
        idents = _identifiers(src) | {f.stem}
        out = deid.dicom_file(f, tmp_path / "out" / f"{deid.part(f.name)}")
        raw = out.read_bytes()
        for ident in idents:
            assert ident.encode() not in raw, f"{ident} left in {out.name}"
        ds = pydicom.dcmread(out)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientID == again.patient_id(str(src.PatientID)) == Path(out.name).stem
        assert ds.StudyInstanceUID == again.uid(src.StudyInstanceUID)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == src.SOPClassUID  # DICOM's own UIDs kept
        assert ds.StudyDate == "" and "PatientBirthDate" in ds and ds.PatientBirthDate == ""
        assert len(ds.StudyInstanceUID) <= 64 and UID_RE.match(ds.StudyInstanceUID)
        assert ds.Modality == "CR" and ds.BodyPartExamined == "CHEST"
        assert (ds.pixel_array == src.pixel_array).all()


def test_deidentify_synthetic_header_with_every_main_attribute(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.PatientName = "Doe^John"
    ds.PatientID = "MRN123456"
    ds.PatientBirthDate = "19700101"
    ds.PatientAddress = "1 Main Street"
    ds.OtherPatientIDs = "ALT998877"
    ds.AccessionNumber = "ACC777888"
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDateTime = "20240102", "20240102", "20240102101010"
    ds.StudyTime = "101010"
    ds.InstitutionName = "Saint Elsewhere Hospital"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.PerformingPhysicianName = "Wilson^James"
    ds.OperatorsName = "Tech^Tina"
    ds.StudyInstanceUID = "1.2.3.4.5.6.7"
    ds.SeriesInstanceUID = "1.2.3.4.5.6.8"
    ds.SOPInstanceUID = "1.2.3.4.5.6.9"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.ImageComments = "John's left wrist"
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6.9"
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00291010, "LO", "private MRN123456")
    deid = Deidentifier(b"k" * 32)
    deid.dataset(ds)
    text = str(ds)
    for ident in ("Doe", "MRN123456", "19700101", "Main Street", "ALT998877", "ACC777888",
                  "20240102", "Elsewhere", "House", "Wilson", "Tina", "1.2.3.4.5.6", "left wrist"):
        assert ident not in text, ident
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"
    assert re.fullmatch(r"2\.25\.\d+", ds.StudyInstanceUID)
    assert Deidentifier(b"k" * 32).uid("1.2.3.4.5.6.7") == ds.StudyInstanceUID
    assert Deidentifier(b"j" * 32).uid("1.2.3.4.5.6.7") != ds.StudyInstanceUID  # keyed


def test_deid_keys_keep_labels_but_not_identifiers(tmp_path):
    deid = Deidentifier(b"s" * 32)
    deid.keep_names(["chest", "abd"])
    k = deid.key("/home/alice/data/MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive")
    assert k.endswith("MURA-v1.1/valid/XR_WRIST/" + k.split("/")[-2] + "/study1_positive")
    assert "alice" not in k and "11185" not in k and not k.startswith("/")
    c = deid.key("/home/alice/train/chest/IMG_0042.png", root="/home/alice")
    assert c.startswith("train/chest/anon-") and c.endswith(".png")
    assert deid.key("/a/b.dcm#3").endswith(".dcm#3")
    with LabelStore(tmp_path / "s.sqlite") as s:
        s.set_source_labels({"valid/XR_WRIST/patient11185/study1_positive": Label("abnormal")},
                            level="study")
        export_labels(s, "mura", tmp_path / "m.csv", deidentify=True, deidentifier=deid)
    line = (tmp_path / "m.csv").read_text().strip()
    assert "11185" not in line and line.endswith("/study1_positive/,1")


def test_dotted_names_are_pseudonymised_whole(tmp_path):
    """Only a known image suffix survives: 'DOE.JANE/' never becomes 'anon-....JANE'."""
    deid = Deidentifier(b"d" * 32)
    cases = ["/archive/DOE.JANE/1.3.12.2.1107.5.2.32.35162.2012021516.1",
             "/archive/DOE.JANE/SMITH.J.R/IM0001",
             "/archive/O.BRIEN.MARY/CR.CHEST.2012/image.v2",
             "/archive/DOE.JANE/chest.pa.dcm",
             "/archive/DOE.JANE/scan.PNG"]
    out = [deid.key(k, root="/archive") for k in cases]
    for k, o in zip(cases, out):
        for ident in ("DOE", "JANE", "SMITH", "BRIEN", "MARY", "CHEST", "2012", "IM0001", "v2", "35162"):
            assert ident.lower() not in o.lower(), (k, o)
        assert o.count("/") == k.count("/") - 2  # same depth below the root
    assert out[0].split("/")[0] == out[1].split("/")[0] == out[3].split("/")[0]  # consistent
    assert out[0].split("/")[1].startswith("2.25.")  # a UID name stays a valid UID
    assert out[3].endswith(".dcm") and out[4].endswith(".PNG") and "." not in out[2]
    assert deid.part("DOE.JANE") == deid.pseudonym("DOE.JANE")
