"""A real Orthanc for the PACS tests (and scripts/bench_pacs.py): started on loopback with its
own config (AE title, DICOM and HTTP ports chosen free, storage in a temp folder, the DICOMweb
plugin loaded from its installed path), stopped by PID at the end.

    with Orthanc.start(tmp_path, modalities={"RADVIEW": ("RADVIEW", "127.0.0.1", scp_port)}) as o:
        o.upload(path); o.dicom_port; o.http_url; o.dicomweb_url; o.kill()

`Orthanc.unavailable()` says why no Orthanc can run here (None when it can): the tests skip
with that reason. scripts/test installs the Debian packages `orthanc` and `orthanc-dicomweb`
when it runs as root with apt.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

AET = "ORTHANC"
_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
            "/usr/lib/orthanc/libOrthancDicomWeb.so")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> str | None:
    for b in _BINARIES:
        if os.access(b, os.X_OK):
            return b
    return shutil.which("Orthanc")


def dicomweb_plugin() -> str | None:
    for p in _PLUGINS:
        if os.path.isfile(p):
            return p
    return None


class Orthanc:
    def __init__(self, proc: subprocess.Popen, workdir: Path, dicom_port: int, http_port: int,
                 aet: str) -> None:
        self.proc = proc
        self.workdir = workdir
        self.dicom_port = dicom_port
        self.http_port = http_port
        self.aet = aet
        self.host = "127.0.0.1"

    # ------------------------------------------------------------------ lifetime
    @staticmethod
    def unavailable(dicomweb: bool = False) -> str | None:
        if binary() is None:
            return ("Orthanc is not installed (Debian: apt-get install -y orthanc orthanc-dicomweb;"
                    " scripts/test does it when run as root)")
        if dicomweb and dicomweb_plugin() is None:
            return "the Orthanc DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)"
        return None

    @classmethod
    def start(cls, workdir: str | os.PathLike, *, aet: str = AET,
              modalities: dict[str, tuple[str, str, int]] | None = None,
              dicomweb: bool = True, timeout: float = 20.0) -> "Orthanc":
        """Start on free ports; a second try with new ports if one was taken meanwhile."""
        try:
            return cls._start(workdir, aet, modalities, dicomweb, timeout)
        except RuntimeError:
            return cls._start(Path(workdir) / "retry", aet, modalities, dicomweb, timeout)

    @classmethod
    def _start(cls, workdir, aet, modalities, dicomweb, timeout) -> "Orthanc":
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        dicom_port, http_port = free_port(), free_port()
        while http_port == dicom_port:
            http_port = free_port()
        storage = workdir / "storage"
        config = {
            "Name": "radview-test",
            "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "HttpServerEnabled": True, "DicomServerEnabled": True,
            "DicomCheckCalledAet": True,             # a wrong called AE title is refused
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True, "UnknownSopClassAccepted": True,
            "DicomModalities": {k: list(v) for k, v in (modalities or {}).items()},
            "StableAge": 1, "ConcurrentJobs": 2, "HttpThreadsCount": 8,
            "SaveJobs": False, "OrthancExplorerEnabled": False, "WebDavEnabled": False,
            "Plugins": [dicomweb_plugin()] if dicomweb and dicomweb_plugin() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full",
                         "SeriesMetadata": "Full"},
            "LogExportedResources": False, "KeepAlive": True,
        }
        cfg = workdir / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=1))
        log = open(workdir / "orthanc.log", "wb")  # noqa: SIM115 (kept open for the process)
        proc = subprocess.Popen([binary() or "Orthanc", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT, cwd=workdir)
        log.close()
        self = cls(proc, workdir, dicom_port, http_port, aet)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start ({proc.returncode}): {self.log()[-2000:]}")
            try:
                self.rest("/system")
                with socket.create_connection((self.host, dicom_port), timeout=0.5):
                    return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not start within {timeout} s: {self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return (self.workdir / "orthanc.log").read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL by PID (the 'Orthanc dies in the middle' case)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "Orthanc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST
    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        req = urllib.request.Request(self.http_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=10) as rsp:
            body = rsp.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def upload(self, path: str | os.PathLike) -> dict:
        return self.rest("/instances", Path(path).read_bytes(), "POST")

    def count_instances(self) -> int:
        return int(self.rest("/statistics")["CountInstances"])


# ---------------------------------------------------------------------- test data + fixtures
def make_study(folder: str | os.PathLike, n: int, *, size: int = 32, study_uid: str | None = None,
               patient_id: str = "P1", patient_name: str = "Test^Patient", **elements) -> list[Path]:
    """n small generated CR instances of one new study (new UIDs), written under folder."""
    import numpy as np
    from pydicom.uid import generate_uid

    from dicom_factory import write_dicom

    study_uid = study_uid or generate_uid()
    series = generate_uid()
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        px = rng.integers(0, 4096, (size, size), dtype=np.uint16)
        out.append(write_dicom(Path(folder) / f"{study_uid}-{i}.dcm", px, bits_stored=12,
                               study_uid=study_uid, series_uid=series, instance=i + 1,
                               patient_id=patient_id, PatientName=patient_name, **elements))
    return out


def reidentify(src: str, dst: str | os.PathLike, *, study_uid: str, series_uid: str,
               patient_id: str, **elements) -> Path:
    """A copy of a pydicom-data file with new UIDs and the given patient / study attributes."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(src)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    for k, v in elements.items():
        setattr(ds, k, v)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)
    return dst


def require(dicomweb: bool = False) -> None:
    import pytest

    reason = Orthanc.unavailable(dicomweb)
    if reason:
        pytest.skip(reason)
