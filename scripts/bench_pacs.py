"""Retrieve throughput against a real Orthanc on loopback: radview's C-GET and WADO-RS retrieve
(into the cache, with progress and the partial/complete record) vs plain baselines in the same
run: a getscu-style pynetdicom C-GET writing each instance to a file, and dicomweb-client's
iter_study saving each instance. Target: radview >= 0.9x the baseline's instances/s.

    nice -n 10 .venv/bin/python scripts/bench_pacs.py [--instances 200] [--repeats 5]

The instances are pydicom / pydicom-data files re-identified with new UIDs into one study
(written to a temp folder, uploaded to a temp Orthanc, all removed at the end).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SOURCES = ("CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "MR_small_bigendian.dcm", "liver_1frame.dcm")


def make_data(folder: Path, n: int) -> tuple[str, list[Path]]:
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from orthanc import reidentify

    srcs = [p for p in (get_testdata_file(s, download=False) for s in SOURCES) if p]
    study, series = generate_uid(), generate_uid()
    files = [reidentify(srcs[i % len(srcs)], folder / f"{i}.dcm", study_uid=study,
                        series_uid=series, patient_id="BENCH", InstanceNumber=i + 1)
             for i in range(n)]
    return study, files


def baseline_get(o, study: str, out: Path) -> int:
    """getscu-style: one association, storage contexts with SCP role, write the bytes."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, build_role, evt
    from pynetdicom.presentation import StoragePresentationContexts
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

    out.mkdir(parents=True, exist_ok=True)
    n = [0]

    def on_store(event):
        (out / f"{event.request.AffectedSOPInstanceUID}.dcm").write_bytes(event.encoded_dataset())
        n[0] += 1
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    contexts = StoragePresentationContexts[:127]
    for cx in contexts:
        ae.add_requested_context(cx.abstract_syntax)
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in contexts]
    assoc = ae.associate(o.host, o.dicom_port, ae_title=o.aet, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = study
    for _status, _ in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet):
        pass
    assoc.release()
    return n[0]


def baseline_wado(o, study: str, out: Path) -> int:
    from dicomweb_client import DICOMwebClient

    out.mkdir(parents=True, exist_ok=True)
    c = DICOMwebClient(o.dicomweb_url)
    n = 0
    for ds in c.iter_study(study, media_types=(("application/dicom", "*"),)):
        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
        n += 1
    return n


def radview_retrieve(node, study: str, cache_root: Path, method: str) -> int:
    from radview.net import PacsCache, iter_retrieve

    last = None
    for last in iter_retrieve(node, study, method=method, cache=PacsCache(cache_root)):
        pass
    st = last.payload
    assert st.complete, st.describe()
    return st.received


def timed(fn, *args) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - t0, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from orthanc import Orthanc

    from radview.net import Node

    reason = Orthanc.unavailable(dicomweb=True)
    if reason:
        print(f"skipped: {reason}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_pacs_"))
    o = Orthanc.start(tmp / "orthanc")
    try:
        study, files = make_data(tmp / "data", args.instances)
        for f in files:
            o.upload(f)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        dimse = Node("bench", host=o.host, port=o.dicom_port, called_aet=o.aet, timeout=30)
        web = Node("bench-web", url=o.dicomweb_url, timeout=30)
        runs = {k: [] for k in ("getscu", "radview C-GET", "dicomweb-client", "radview WADO-RS")}
        for r in range(args.repeats + 1):  # the first round warms Orthanc's cache: dropped
            work = tmp / f"run{r}"
            pairs = (("getscu", baseline_get, (o, study, work / "b-get")),
                     ("radview C-GET", radview_retrieve, (dimse, study, work / "r-get", "get")),
                     ("dicomweb-client", baseline_wado, (o, study, work / "b-wado")),
                     ("radview WADO-RS", radview_retrieve, (web, study, work / "r-wado", "wado")))
            for name, fn, fargs in (pairs if r % 2 == 0 else pairs[::-1]):
                dt, n = timed(fn, *fargs)
                assert n == args.instances, (name, n)
                if r:
                    runs[name].append(n / dt)
            shutil.rmtree(work, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{args.instances} instances ({size_mb:.1f} MB), median of {args.repeats} runs, instances/s:")
        for k, v in med.items():
            print(f"  {k:18s} {v:8.1f}   (runs: {', '.join(f'{x:.0f}' for x in runs[k])})")
        g = med["radview C-GET"] / med["getscu"]
        w = med["radview WADO-RS"] / med["dicomweb-client"]
        print(f"radview C-GET / getscu-style pynetdicom:   {g:.2f}x (target >= 0.9x)")
        print(f"radview WADO-RS / dicomweb-client iter:    {w:.2f}x (target >= 0.9x)")
        return 0 if min(g, w) >= 0.9 else 1
    finally:
        o.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
