"""De-identification after the DICOM PS3.15 Basic Application Level Confidentiality Profile
(Annex E, Table E.1-1), for what radview exports: label files (item keys, patient ids, reader
names, notes) and DICOM headers.

Identifiers are replaced *consistently* with a keyed hash (HMAC-SHA256 with a secret kept in
RADVIEW_HOME/deid.key, created on first use): the same UID, patient id or path always maps to
the same pseudonym on this installation, so exports made on different days still line up, while
nobody without the key can recompute or reverse the mapping.

- UIDs -> '2.25.<decimal of 128 bits of the hash>' (a valid UID, PS3.5 B.2);
- patient ids / RSNA patientIds -> a UUID-shaped pseudonym; MURA 'patientNNNNN' -> 'patient<hex>';
- file paths -> relative paths whose identifying parts are pseudonyms (split names, MURA study
  types, 'studyN_positive' and class names are kept: they are labels, not identifiers); every
  other component is pseudonymised whole, keeping only a known image suffix ('.dcm', '.png'...):
  'DOE.JANE/' never becomes 'anon-....JANE';
- DICOM headers: names, ids, dates and times, accession number, institution, physicians,
  operators, descriptions and comments removed or emptied, UIDs replaced, private tags removed,
  PatientIdentityRemoved = YES. Burned-in text in the pixels is not touched.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from radview.io import DICOM_SUFFIXES, RASTER_SUFFIXES

PROFILE = "DICOM PS3.15 Basic Application Level Confidentiality Profile"
METHOD = f"radview: {PROFILE}; UIDs and patient ids replaced by keyed hash (HMAC-SHA256)"

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)+$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MURA_PATIENT_RE = re.compile(r"^patient.+$", re.IGNORECASE)
_SAFE_RE = re.compile(
    r"^(XR_[A-Z]+|study\d+(_(positive|negative))?|train|training|val|valid|validation|test|testing"
    r"|holdout|MURA-v[\d.]+)$", re.IGNORECASE)
STANDARD_UID_ROOT = "1.2.840.10008."  # DICOM's own UIDs (SOP classes, transfer syntaxes): kept
_IMAGE_SUFFIXES = frozenset(DICOM_SUFFIXES + RASTER_SUFFIXES)

# PS3.15 Table E.1-1, main attributes: X remove, Z empty (type 2), D dummy/pseudonym, U new UID.
ACTIONS: dict[str, str] = {
    "PatientName": "D", "PatientID": "D", "IssuerOfPatientID": "X",
    "PatientBirthDate": "Z", "PatientBirthTime": "X", "PatientSex": "Z", "PatientAge": "X",
    "PatientSize": "X", "PatientWeight": "X", "PatientAddress": "X", "PatientBirthName": "X",
    "PatientMotherBirthName": "X", "PatientTelephoneNumbers": "X", "OtherPatientIDs": "X",
    "OtherPatientNames": "X", "OtherPatientIDsSequence": "X", "MedicalRecordLocator": "X",
    "EthnicGroup": "X", "Occupation": "X", "AdditionalPatientHistory": "X",
    "PatientComments": "X", "PatientReligiousPreference": "X", "MilitaryRank": "X",
    "BranchOfService": "X", "CountryOfResidence": "X", "RegionOfResidence": "X",
    "PatientInsurancePlanCodeSequence": "X", "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X", "PatientState": "X", "PregnancyStatus": "X",
    "StudyDate": "Z", "StudyTime": "Z", "ContentDate": "Z", "ContentTime": "Z",
    "SeriesDate": "X", "SeriesTime": "X", "AcquisitionDate": "X", "AcquisitionTime": "X",
    "AcquisitionDateTime": "X", "InstanceCreationDate": "X", "InstanceCreationTime": "X",
    "OverlayDate": "X", "OverlayTime": "X", "CurveDate": "X", "CurveTime": "X",
    "AccessionNumber": "Z", "StudyID": "Z", "StudyDescription": "X", "SeriesDescription": "X",
    "InstitutionName": "X", "InstitutionAddress": "X", "InstitutionalDepartmentName": "X",
    "InstitutionCodeSequence": "X", "StationName": "X", "DeviceSerialNumber": "X",
    "ReferringPhysicianName": "Z", "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X", "ReferringPhysicianIdentificationSequence": "X",
    "PerformingPhysicianName": "X", "PerformingPhysicianIdentificationSequence": "X",
    "NameOfPhysiciansReadingStudy": "X", "PhysiciansReadingStudyIdentificationSequence": "X",
    "PhysiciansOfRecord": "X", "PhysiciansOfRecordIdentificationSequence": "X",
    "OperatorsName": "X", "OperatorIdentificationSequence": "X", "RequestingPhysician": "X",
    "RequestingService": "X", "ScheduledPerformingPhysicianName": "X",
    "PerformedProcedureStepDescription": "X", "PerformedProcedureStepID": "X",
    "PerformedProcedureStepStartDate": "X", "PerformedProcedureStepStartTime": "X",
    "RequestAttributesSequence": "X", "AdmittingDiagnosesDescription": "X",
    "ImageComments": "X", "FrameComments": "X", "TextComments": "X", "DerivationDescription": "X",
    "ProtocolName": "X", "StudyComments": "X", "InterpretationText": "X",
    "Manufacturer": "keep", "Modality": "keep", "BodyPartExamined": "keep", "ViewPosition": "keep",
}
# keys of radview's own item metadata (items table) and what to do with them
META_ACTIONS: dict[str, str] = {"series_uid": "U", "description": "X", "patient": "D"}


class Deidentifier:
    """Consistent pseudonyms from a secret key (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the de-identification secret must be at least 16 bytes")
        self._secret = bytes(secret)
        self._keep_names: set[str] = set()

    @classmethod
    def for_home(cls, home: str | os.PathLike | None = None) -> "Deidentifier":
        """The installation's de-identifier: secret in <RADVIEW_HOME>/deid.key (made once, 0600)."""
        if home is None:
            from radview.paths import user_home
            home = user_home()
        path = Path(home) / "deid.key"
        if not path.exists():
            tmp = path.with_name(f"deid.key.{os.getpid()}.part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            try:
                os.link(tmp, path)  # atomic, and never replaces a key made meanwhile
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return cls(bytes.fromhex(path.read_text().strip()))

    @property
    def key_id(self) -> str:
        """A short fingerprint of the secret (tells which key made an export; reveals nothing)."""
        return hashlib.sha256(b"radview-key-id" + self._secret).hexdigest()[:12]

    def keep_names(self, names: Iterable[str]) -> None:
        """Path parts that are class names (e.g. 'chest', 'abd' folders) and may be kept."""
        self._keep_names |= {n for n in names if n and not UID_RE.match(n)}

    # ------------------------------------------------------------------ primitives
    def digest(self, kind: str, text: str) -> str:
        return hmac.new(self._secret, f"{kind}\0{text}".encode(), hashlib.sha256).hexdigest()

    def uid(self, value: str) -> str:
        """A DICOM UID -> '2.25.<int>' (DICOM's own standard UIDs are kept)."""
        value = str(value).strip()
        if not value or value.startswith(STANDARD_UID_ROOT):
            return value
        return "2.25." + str(int(self.digest("uid", value)[:32], 16))

    def patient_id(self, value: str) -> str:
        """A patient id -> a UUID-shaped pseudonym (RSNA patientIds keep their shape)."""
        return str(uuid.UUID(hex=self.digest("patient", str(value))[:32]))

    def pseudonym(self, value: str, prefix: str = "anon-") -> str:
        return prefix + self.digest("name", str(value))[:16]

    def reader(self, name: str) -> str:
        """A reader (a physician: PS3.15 removes their names) -> 'reader-<hex>'."""
        return self.pseudonym(name, "reader-") if name else name

    # ------------------------------------------------------------------ keys and paths
    def part(self, part: str) -> str:
        """One path component or bare identifier."""
        if not part or _SAFE_RE.match(part) or part in self._keep_names:
            return part
        stem, ext = os.path.splitext(part)
        if ext.lower() not in _IMAGE_SUFFIXES:
            # only a known image suffix is kept: 'DOE.JANE' (a dotted patient folder), 'IM0001.v2',
            # '1.2.840.5' (a UID, not a file '1.2.840' with suffix '.5') are pseudonymised whole
            stem, ext = part, ""
        if UID_RE.match(stem):
            new = self.uid(stem)
        elif UUID_RE.match(stem):
            new = self.patient_id(stem)
        elif MURA_PATIENT_RE.match(stem):
            new = "patient" + self.digest("patient", stem)[:12]
        else:
            new = self.pseudonym(stem)
        return new + ext

    def path(self, value: str, root: str | None = None) -> str:
        """A path -> a relative POSIX path of de-identified components (relative to root when
        the path lies under it)."""
        p = str(value).replace("\\", "/")
        if root:
            r = str(root).replace("\\", "/").rstrip("/")
            if p == r:
                p = ""
            elif p.startswith(r + "/"):
                p = p[len(r) + 1:]
        parts = [x for x in PurePosixPath(p).parts if x not in ("/", "")]
        if parts and re.match(r"^[A-Za-z]:$", parts[0]):
            parts = parts[1:]
        return "/".join(self.part(x) for x in parts)

    def key(self, key: str, root: str | None = None) -> str:
        """An item key (Study.key or ImageRef.key) -> its de-identified form."""
        frame = ""
        if "#" in key and key.rsplit("#", 1)[1].isdigit():
            key, frame = key.rsplit("#", 1)
            frame = "#" + frame
        if "/" in key or "\\" in key:
            return self.path(key, root) + frame
        return self.part(key) + frame

    # ------------------------------------------------------------------ headers
    def meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """A dict of header keywords (or radview item metadata) with the profile applied."""
        out: dict[str, Any] = {}
        for name, value in meta.items():
            action = META_ACTIONS.get(name) or ACTIONS.get(name)
            if action is None and name.lower().endswith("uid"):  # SOPInstanceUID, series_uid, uid
                action = "U"
            if action in ("X",):
                continue
            if action == "Z":
                out[name] = ""
            elif action == "D":
                out[name] = self.patient_id(value) if value not in ("", None) else value
            elif action == "U":
                out[name] = self.uid(value) if value else value
            else:
                out[name] = value
        return out

    def dataset(self, ds: Any) -> Any:
        """Apply the profile to a pydicom Dataset in place (file meta too); returns it."""
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        pseudo = self.patient_id(str(ds.get("PatientID", "") or ds.get("PatientName", "") or ""))

        def walk(d: Dataset) -> None:
            d.remove_private_tags()
            for elem in list(d):
                kw = elem.keyword
                action = ACTIONS.get(kw)
                if elem.VR == "SQ" and action != "X":
                    for item in elem.value or ():
                        walk(item)
                    continue
                if action == "keep":
                    continue
                if action is None:
                    if elem.VR == "UI":
                        action = "U"
                    elif elem.VR == "PN":
                        action = "X"  # any other person name
                    elif elem.VR in ("DA", "DT", "TM"):
                        action = "X"  # any other date or time
                    else:
                        continue
                if action == "X":
                    del d[elem.tag]
                elif action == "Z":
                    elem.value = ""
                elif action == "D":
                    elem.value = pseudo
                elif action == "U":
                    if elem.VM > 1:
                        elem.value = [self.uid(v) for v in elem.value]
                    elif elem.value:
                        elem.value = self.uid(str(elem.value))
        walk(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.uid(str(meta.MediaStorageSOPInstanceUID))
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD[:64]
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        return ds

    def dicom_file(self, src: str | os.PathLike, dst: str | os.PathLike) -> Path:
        """Write a de-identified copy of a DICOM file (pixels unchanged) to dst."""
        import pydicom

        ds = pydicom.dcmread(os.fspath(src))
        self.dataset(ds)
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(dst, enforce_file_format=True)
        return dst
