"""A study's reads as DICOM: a Comprehensive SR (TID 1500 Measurement Report, written with
highdicom) and a Grayscale Softcopy Presentation State with the boxes, so any viewer shows them.

    reads = collect_reads(store)                       # one StudyReads per labelled DICOM study
    sr = build_sr(reads[0]); gsps = build_gsps(reads[0])   # pydicom Datasets (new series each)
    export_dicom_sr(store, "out/")                     # `radview export --format dicom-sr --out DIR`

What the SR holds (one measurement group each, in the Imaging Measurements container):
- the study label: 'Finding' = the class (coded, scheme 99RADVIEW), label space, where the label
  came from, the reader, the correction reason (coded, radview's REASON_CODES), the note, the
  decision time, and the model shown (Algorithm Name / Version) with its output;
- each labelled image: the same items, referencing the image (Source), and its box count;
- each box: an Image Region (SCOORD POLYLINE, closed rectangle in pixel coordinates of the
  referenced image), the box class as Finding Type, a 'Detection score' measurement (unit 1)
  for predicted boxes, and the boxes' correction reason, reader and model shown.
radview.net.sr_import reads such an SR back into a store (labels and boxes equal).

The SR and GSPS share the study's StudyInstanceUID and patient module and get new series.
deid (a radview.export.deid.Deidentifier) gives pseudonymous readers, no notes, and then the
whole dataset goes through the PS3.15 profile (UIDs consistent with the other exports).
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from radview.types import Box, Label, Progress

SCHEME = "99RADVIEW"
SR_SERIES_NUMBER = 9901
GSPS_SERIES_NUMBER = 9902
MANUFACTURER = "radview"


# ---------------------------------------------------------------------- what is written
@dataclass(frozen=True)
class Decision:
    """Who decided a value and why (from the store's latest correction), or where it came from."""

    source: str = ""               # 'correction' or the source label's origin
    reader: str = ""
    reason: str = ""               # REASON_CODES key ('' for a source label)
    note: str = ""
    time: str = ""
    model: str = ""
    model_version: str = ""
    model_output: Any = None
    space: str = ""


@dataclass(frozen=True)
class ImageRead:
    key: str                       # store image key (a path, 'path#frame')
    header: Any                    # pydicom Dataset (no pixels)
    frame: int = 0
    label: Label | None = None
    label_decision: Decision = Decision()
    boxes_known: bool = False
    boxes_decision: Decision = Decision()
    measurements: tuple = ()       # radview.measure.Measurement objects drawn on this image


@dataclass(frozen=True)
class StudyReads:
    study_uid: str
    study_key: str
    label: Label | None = None
    decision: Decision = Decision()
    images: tuple[ImageRead, ...] = ()

    @property
    def measurements(self) -> list[tuple[str, Any]]:
        return [(im.key, m) for im in self.images for m in im.measurements]

    @property
    def boxes(self) -> list[tuple[ImageRead, Box]]:
        return [(im, b) for im in self.images if im.label for b in im.label.boxes]

    @property
    def readers(self) -> list[str]:
        names = [self.decision.reader] + [d.reader for im in self.images
                                          for d in (im.label_decision, im.boxes_decision)]
        return [n for n in dict.fromkeys(names) if n]


@dataclass(frozen=True)
class DicomSrResult:
    out: Path
    files: tuple[Path, ...] = ()
    studies: int = 0
    deidentified: bool = False
    skipped: dict[str, int] = field(default_factory=dict)


class SrError(Exception):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


# ---------------------------------------------------------------------- reading the store
def _header(path: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, InvalidDicomError, ValueError, TypeError, AttributeError, EOFError):
        return None
    if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds or "SOPClassUID" not in ds:
        return None
    return ds


def _split(key: str) -> tuple[str, int]:
    base, sep, frame = key.rpartition("#")
    if sep and frame.isdigit() and base:
        return base, int(frame)
    return key, 0


def _decision(store, key: str, level: str, kind: str, label: Label | None, state) -> Decision:
    """The latest active plain correction of that kind whose value is the current one."""
    space = getattr(label, "space", "") if label else ""
    if state is None or not state.corrected:
        return Decision(source=(label.source if label else ""), space=space)
    current = (label.value if label else None) if kind == "label" else (label.boxes if label else ())
    for e in reversed(store.history(key, level)):
        if e.kind != kind or e.inverse_of is not None:
            continue
        value = e.new_value if kind == "label" else tuple(e.new_value or ())
        if value == current:
            return Decision("correction", e.reader, e.reason, e.note, e.time, e.model,
                            e.model_version, e.model_output, getattr(e, "space", "") or space)
    return Decision(source=(label.source if label else ""), space=space)


def store_measurements(store) -> dict[str, list]:
    """{image key: [radview.measure.Measurement]} from the store's measurement annotations, when
    the store keeps them (the store annotations API of issue 14); {} otherwise."""
    get = getattr(store, "measurements", None)
    if get is None:
        return {}
    return {k: list(v) for k, v in get().items() if v}


def collect_reads(store, study_keys: list[str] | None = None, *,
                  measurements: dict[str, list] | None = None
                  ) -> tuple[list[StudyReads], dict[str, int]]:
    """Every labelled (or measured) DICOM study of the store (or those given: study keys or
    StudyInstanceUIDs), with its images' headers. measurements: {image key: [Measurement]}
    (default: the store's, see store_measurements). Returns (reads, skipped reason -> count)."""
    skipped: dict[str, int] = {}
    measured = store_measurements(store) if measurements is None else measurements
    images = store.items("image")
    by_study: dict[str, list[str]] = {}
    for key, item in images.items():
        by_study.setdefault(item.get("study_key") or "", []).append(key)
    study_labels = store.labels("study")
    image_states = store.states("image")
    wanted = set(study_keys) if study_keys else None
    out: list[StudyReads] = []
    candidates = sorted(set(by_study) | set(study_labels))
    if wanted is not None and wanted & set(candidates):
        candidates = sorted(wanted & set(candidates))  # DICOM study keys are the UIDs: no scan
    for skey in candidates:
        keys = sorted(by_study.get(skey, []))
        headers = []
        for k in keys:
            path, frame = _split(k)
            ds = _header(path) if os.path.isfile(path) else None
            if ds is not None:
                ds = evidence_header(ds)
                headers.append((k, frame, ds))
        if not headers:
            if skey in study_labels:
                skipped["not a DICOM study (no readable DICOM image)"] = \
                    skipped.get("not a DICOM study (no readable DICOM image)", 0) + 1
            continue
        uid = str(headers[0][2].StudyInstanceUID)
        if wanted is not None and skey not in wanted and uid not in wanted:
            continue
        reads_img = []
        for k, frame, ds in headers:
            st = image_states.get(k)
            lab = st.label if st else None
            ms = tuple(measured.get(k, ()))
            if lab is None or (lab.value is None and not lab.boxes and not st.boxes_known):
                if ms:
                    reads_img.append(ImageRead(k, ds, frame, None, measurements=ms))
                continue
            reads_img.append(ImageRead(k, ds, frame, lab, _decision(store, k, "image", "label", lab, st),
                                       bool(st.boxes_known or lab.boxes),
                                       _decision(store, k, "image", "boxes", lab, st), ms))
        slab = study_labels.get(skey)
        if slab is not None and slab.value is None:
            slab = None
        if slab is None and not reads_img:
            continue  # nothing read: no SR
        sst = store.state(skey, "study") if slab is not None else None
        out.append(StudyReads(uid, skey, slab, _decision(store, skey, "study", "label", slab, sst),
                              tuple(reads_img)))
    return out, skipped


# ---------------------------------------------------------------------- building the SR
def _code(value: str, meaning: str | None = None):
    from highdicom.sr import CodedConcept

    return CodedConcept(str(value), SCHEME, (meaning or str(value))[:64])


NAMES = {
    "finding": ("121071", "DCM", "Finding"),
    "comment": ("121106", "DCM", "Comment"),
    "space": ("label-space", SCHEME, "Label space"),
    "source": ("label-source", SCHEME, "Label source"),
    "reader": ("reader", SCHEME, "Reader"),
    "reason": ("reason", SCHEME, "Correction reason"),
    "time": ("decided", SCHEME, "Decision time"),
    "output": ("model-output", SCHEME, "Model output shown"),
    "box_count": ("box-count", SCHEME, "Number of boxes"),
    "score": ("score", SCHEME, "Detection score"),
    "level": ("level", SCHEME, "Read level"),
}


def name(what: str):
    from highdicom.sr import CodedConcept

    v, s, m = NAMES[what]
    return CodedConcept(v, s, m)


def _texts(decision: Decision, deid, extra: dict[str, str] | None = None) -> list:
    from highdicom.sr import TextContentItem
    from highdicom.sr.enum import RelationshipTypeValues

    rel = RelationshipTypeValues.CONTAINS
    items = []
    values = dict(extra or {})
    values["source"] = decision.source
    values["space"] = decision.space
    values["reader"] = deid.reader(decision.reader) if deid and decision.reader else decision.reader
    values["time"] = decision.time
    if decision.note and deid is None:
        values["comment"] = decision.note
    if decision.model_output is not None:
        values["output"] = _output_json(decision.model_output)
    for k, v in values.items():
        if v:
            items.append(TextContentItem(name(k), str(v), relationship_type=rel))
    return items


def _output_json(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        from radview.store.model import box_to_dict

        return json.dumps([box_to_dict(b) for b in value])
    return json.dumps(value)


def _evaluations(value: str | None, decision: Decision) -> list:
    from highdicom.sr import QualitativeEvaluation

    from radview.store.model import REASON_CODES

    out = []
    if value:
        out.append(QualitativeEvaluation(name("finding"), _code(value)))
    if decision.reason:
        out.append(QualitativeEvaluation(name("reason"), _code(decision.reason,
                                                                REASON_CODES.get(decision.reason))))
    return out


def _algorithm(decision: Decision):
    from highdicom.sr import AlgorithmIdentification

    if not decision.model:
        return None
    return AlgorithmIdentification(name=decision.model, version=decision.model_version or "unknown")


def _append(group, items: list) -> None:
    if items:
        container = group[0]
        container.ContentSequence.extend(items)


def _rect(box: Box):
    import numpy as np

    x0, y0, x1, y1 = box.as_xyxy()
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def _image_ref(im: ImageRead, cls):
    frames = [im.frame + 1] if int(im.header.get("NumberOfFrames", 1) or 1) > 1 else None
    return cls(str(im.header.SOPClassUID), str(im.header.SOPInstanceUID), frames)


def build_sr(reads: StudyReads, *, deid=None, series_uid: str | None = None,
             sop_uid: str | None = None):
    """The TID 1500 Comprehensive SR of one study (a pydicom Dataset, highdicom-built)."""
    import highdicom as hd
    from highdicom.sr import (ImageRegion, MeasurementReport, MeasurementsAndQualitativeEvaluations,
                              ObservationContext, ObserverContext,
                              PersonObserverIdentifyingAttributes,
                              PlanarROIMeasurementsAndQualitativeEvaluations, SourceImageForRegion,
                              SourceImageForMeasurementGroup, TrackingIdentifier)
    from highdicom.sr import Measurement
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from radview.export.sr_measurements import measurement_group

    if not reads.images and reads.label is None:
        raise SrError(reads.study_uid, "nothing to report (no label, no boxes)")
    groups = []
    if reads.label is not None:
        g = MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=generate_uid(), identifier="study label"),
            algorithm_id=_algorithm(reads.decision),
            qualitative_evaluations=_evaluations(reads.label.value, reads.decision) or None)
        _append(g, _texts(reads.decision, deid, {"level": "study"}))
        groups.append(g)
    for i, im in enumerate(reads.images):
        lab = im.label
        for j, m in enumerate(im.measurements):
            groups.append(measurement_group(m, _image_ref(im, SourceImageForRegion), j + 1,
                                            _texts(Decision(), deid, {"level": "measurement"})))
        if lab is None:
            continue
        g = MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=generate_uid(), identifier=f"image {i + 1}"),
            algorithm_id=_algorithm(im.label_decision),
            qualitative_evaluations=_evaluations(lab.value if lab else None, im.label_decision) or None,
            source_images=[_image_ref(im, SourceImageForMeasurementGroup)])
        extra = {"level": "image"}
        if im.boxes_known:
            extra["box_count"] = str(len(lab.boxes) if lab else 0)
        _append(g, _texts(im.label_decision, deid, extra))
        groups.append(g)
        for j, box in enumerate(lab.boxes if lab else ()):
            region = ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                 graphic_data=_rect(box),
                                 source_image=_image_ref(im, SourceImageForRegion))
            measurements = None
            if box.score is not None:
                measurements = [Measurement(name("score"), float(box.score),
                                            hd.sr.CodedConcept("1", "UCUM", "no units"))]
            g = PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=generate_uid(),
                                                       identifier=f"image {i + 1} box {j + 1}"),
                referenced_region=region, finding_type=_code(box.label or "box"),
                algorithm_id=_algorithm(im.boxes_decision), measurements=measurements,
                qualitative_evaluations=_evaluations(None, im.boxes_decision) or None)
            _append(g, _texts(im.boxes_decision, deid, {"level": "box"}))
            groups.append(g)
    readers = reads.readers or ["radview"]
    reader = deid.reader(readers[-1]) if deid else readers[-1]
    person = ObserverContext(observer_type=codes.cid270.Person,
                             observer_identifying_attributes=PersonObserverIdentifyingAttributes(
                                 name=_person_name(reader)))
    report = MeasurementReport(
        observation_context=ObservationContext(observer_person_context=person),
        procedure_reported=hd.sr.CodedConcept("363680008", "SCT", "Radiographic imaging procedure"),
        imaging_measurements=groups)
    evidence = [im.header for im in reads.images] or [_first_header(reads)]
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report[0], series_instance_uid=series_uid or generate_uid(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=sop_uid or generate_uid(),
        instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
        series_description="radview reads (TID 1500)")
    _declare_scheme(sr)
    if deid is not None:  # on a copy: highdicom shares sub-datasets with the evidence headers
        sr = copy.deepcopy(sr)
        deid.dataset(sr)
        _put_names(sr.ContentSequence, _person_name(reader))  # the profile drops every PN
        _restore_type1_dates(sr, ("ContentDate", "ContentTime"))
    return sr


def _declare_scheme(ds) -> None:
    """Declare radview's private coding scheme (PS3.3 C.12.1.1.2: 99* schemes are local)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeName = "radview local codes (labels, reasons, readers)"
    item.CodingSchemeResponsibleOrganization = "radview"
    seq = list(ds.get("CodingSchemeIdentificationSequence", [])) + [item]
    ds.CodingSchemeIdentificationSequence = Sequence(seq)


def _restore_type1_dates(ds, keywords) -> None:
    """The profile empties or removes dates; these Type 1 ones are when radview wrote the object
    (not about the patient): give them the export time again so the object stays valid."""
    from datetime import datetime

    now = datetime.now()
    for kw in keywords:
        if not ds.get(kw):
            setattr(ds, kw, now.strftime("%Y%m%d") if kw.endswith("Date") else now.strftime("%H%M%S"))


def _put_names(items, name: str) -> None:
    """PNAME content items need their PersonName: put the (pseudonymous) reader back."""
    for it in items:
        if it.get("ValueType") == "PNAME" and "PersonName" not in it:
            it.PersonName = name
        _put_names(it.get("ContentSequence", []), name)


def _person_name(text: str) -> str:
    t = text.strip() or "unknown"
    return t if "^" in t else t + "^"


_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


def evidence_header(ds):
    """A copy of an image header with the patient/study type 2 attributes present (empty where
    the file lacks them): what highdicom copies into the SR and GSPS."""
    out = copy.deepcopy(ds)
    for kw in _TYPE2:
        if kw not in out:
            setattr(out, kw, "")
    return out


def _first_header(reads: StudyReads):
    raise SrError(reads.study_uid, "no DICOM image of the study is readable for the evidence")


def build_gsps(reads: StudyReads, *, deid=None):
    """A GSPS drawing every box (closed polylines, pixel units, text = box class) on its image;
    None when the study has no boxes."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    boxes = reads.boxes
    if not boxes:
        return None
    layer = hd.pr.GraphicLayer(layer_name="RADVIEW_BOXES", order=1,
                               description="radview boxes")
    annotations = []
    for im in reads.images:
        if not im.label or not im.label.boxes:
            continue
        objs, texts = [], []
        for b in im.label.boxes:
            objs.append(hd.pr.GraphicObject(graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                                            graphic_data=_rect(b), units="PIXEL"))
            x0, y0, _, _ = b.as_xyxy()
            text = b.label if b.score is None else f"{b.label} {b.score:.2f}"
            texts.append(hd.pr.TextObject(text_value=text[:64], units="PIXEL",
                                          anchor_point=(float(x0), float(max(y0 - 2, 0))),
                                          anchor_point_visible=False))
        annotations.append(hd.pr.GraphicAnnotation(referenced_images=[im.header], graphic_layer=layer,
                                                   graphic_objects=objs, text_objects=texts))
    from radview import __version__

    headers = [im.header for im in reads.images if im.label and im.label.boxes]
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=headers, series_instance_uid=generate_uid(),
        series_number=GSPS_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name="radview",
        software_versions=str(__version__), device_serial_number="0",
        content_label="RADVIEW_BOXES", content_description="radview boxes",
        graphic_annotations=annotations, graphic_layers=[layer],
        content_creator_name=_person_name(deid.reader(reads.readers[-1]) if deid and reads.readers
                                          else (reads.readers[-1] if reads.readers else "radview")))
    sides = {str(h.get("Laterality") or h.get("ImageLaterality") or "") for h in headers}
    if len(sides) == 1 and sides != {""}:  # General Series 2C: the images' side, when they agree
        gsps.Laterality = sides.pop()
    if deid is not None:
        gsps = copy.deepcopy(gsps)
        deid.dataset(gsps)
        _restore_type1_dates(gsps, ("PresentationCreationDate", "PresentationCreationTime"))
    return gsps


def study_objects(reads: StudyReads, *, deid=None, gsps: bool = True) -> list:
    """[SR] or [SR, GSPS] for one study."""
    out = [build_sr(reads, deid=deid)]
    if gsps:
        pr = build_gsps(reads, deid=deid)
        if pr is not None:
            out.append(pr)
    return out


# ---------------------------------------------------------------------- export
def iter_export_dicom_sr(store, out: str | os.PathLike, *, deidentify: bool = False, deid=None,
                         gsps: bool = True, study_keys: list[str] | None = None
                         ) -> Iterator[Progress]:
    """Write `<out>/<StudyInstanceUID>.sr.dcm` (+ `.gsps.dcm` when the study has boxes) per
    labelled DICOM study. One Progress per study; the last payload is a DicomSrResult."""
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SrError(str(out_dir), f"cannot create the folder ({exc.strerror or exc})") from None
    if deidentify and deid is None:
        from radview.export.deid import Deidentifier

        deid = Deidentifier.for_home()
    reads, skipped = collect_reads(store, study_keys)
    files: list[Path] = []
    for n, r in enumerate(reads):
        objs = study_objects(r, deid=deid, gsps=gsps)
        for ds, kind in zip(objs, ("sr", "gsps")):
            path = out_dir / f"{ds.StudyInstanceUID}.{kind}.dcm"
            tmp = path.with_name(path.name + ".part")
            try:
                ds.save_as(tmp, enforce_file_format=True)
                os.replace(tmp, path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise SrError(str(path), f"cannot write ({exc.strerror or exc})") from None
            files.append(path)
        yield Progress(n + 1, len(reads), f"study {n + 1} of {len(reads)}")
    yield Progress(len(reads), len(reads), f"wrote {len(files)} files",
                   payload=DicomSrResult(out_dir, tuple(files), len(reads), deid is not None, skipped))


def export_dicom_sr(store, out: str | os.PathLike, **kw) -> DicomSrResult:
    last = None
    for last in iter_export_dicom_sr(store, out, **kw):
        pass
    return last.payload


def run_cli(args, store_path) -> int:
    """`radview export --format dicom-sr --out DIR [--deidentify]` (called by radview.cli.export)."""
    from radview.cli import CliError
    from radview.store import LabelStore, StoreError

    try:
        with LabelStore(store_path, readonly=True) as store:
            res = export_dicom_sr(store, args.out, deidentify=args.deidentify)
    except (StoreError, SrError) as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {res.studies} SR(s), {len(res.files) - res.studies} GSPS to {res.out}"
          + (" (de-identified)" if res.deidentified else ""))
    for reason, n in sorted(res.skipped.items()):
        print(f"  skipped {n}: {reason}")
    return 0
