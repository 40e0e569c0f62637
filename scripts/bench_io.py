#!/usr/bin/env python
"""Benchmark of the io core; every figure is a ratio against a baseline measured in this run.

1. Display path: file -> display-ready uint8 for a 2500x2048 16-bit DICOM, against
   (a) raw `dcmread` + `pixel_array` and (b) pydicom's apply_modality_lut + apply_voi_lut +
   scaling to 8-bit. Targets: <= 2.0x (a), >= 8x faster than (b).
2. Scan with content sniffing on: a 40,000-file MURA-layout tree of tiny PNGs (each one's
   header opened by Pillow), 10 % of its files named without a telling suffix (PACS-named
   DICOMs, README-like files: sniffed) (<= 3 s cold), 10,000 DICOM headers, half of them
   PACS-named (>= 2,000 files/s), warm re-scan of the unchanged tree (<= 1 s).

    .venv/bin/python scripts/bench_io.py [--quick] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timeit(fn, repeat: int) -> float:
    fn()  # warm (page cache, imports)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_big_dicom(path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined = "CR", "CHEST"
    ds.Rows, ds.Columns = 2500, 2048
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 30000, 50000
    yy, xx = np.mgrid[0:2500, 0:2048]
    img = (20000 + 15000 * np.sin(xx / 150.0) * np.cos(yy / 200.0)).astype(np.uint16)
    img += np.random.default_rng(0).integers(0, 2000, img.shape, dtype=np.uint16)
    ds.PixelData = img.tobytes()
    ds.save_as(path, enforce_file_format=True)


def bench_display(work: Path, repeat: int) -> dict:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from radview.io import load_frame
    from radview.io.display import display_image

    path = work / "big.dcm"
    make_big_dicom(path)

    def raw():
        return pydicom.dcmread(path).pixel_array

    def pydicom_path():
        ds = pydicom.dcmread(path)
        arr = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)
        lo, hi = 0.0, float(2 ** ds.BitsStored - 1)  # pydicom's windowing output range (unsigned)
        out = ((arr - lo) / (hi - lo) * 255.0 + 0.5).astype(np.uint8)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            out = 255 - out
        return out

    def radview_full():
        return display_image(load_frame(path))

    def radview_screen():
        return display_image(load_frame(path), max_size=1280)

    t_a = timeit(raw, repeat)
    t_b = timeit(pydicom_path, max(3, repeat // 3))
    t_full = timeit(radview_full, repeat)
    t_screen = timeit(radview_screen, repeat)
    frame = load_frame(path)
    t_wl = timeit(lambda: display_image(frame), repeat)
    # correctness of what was timed: same picture as pydicom's (up to rounding)
    diff = np.abs(radview_full().astype(int) - pydicom_path().astype(int)).max()
    return {"a": t_a, "b": t_b, "full": t_full, "screen": t_screen, "wl": t_wl, "maxdiff": int(diff)}


def make_mura_tree(root: Path, n_files: int) -> None:
    from PIL import Image

    buf = Path(root / "_tiny.png")
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(buf)
    data = buf.read_bytes()
    buf.unlink()
    types = ["XR_ELBOW", "XR_FINGER", "XR_FOREARM", "XR_HAND", "XR_HUMERUS", "XR_SHOULDER", "XR_WRIST"]
    i = 0
    patient = 0
    while i < n_files:
        patient += 1
        stype = types[patient % len(types)]
        for study in (1, 2):
            d = root / "train" / stype / f"patient{patient:05d}" / f"study{study}_{'positive' if (patient + study) % 3 == 0 else 'negative'}"
            d.mkdir(parents=True, exist_ok=True)
            for v in range(1, 5):
                (d / f"image{v}.png").write_bytes(data)
                i += 1
                if i >= n_files:
                    return


def make_unnamed_extras(root: Path, n_dicom: int, n_other: int) -> None:
    """Files whose names do not say what they are, so the scan must sniff their content:
    PACS-named DICOMs (UID names, IM0001, image.v2) and other files (README, notes.v2, ...)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    for i in range(n_dicom):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.9.4.{i}"
        ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, f"1.2.9.4.{i}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"1.2.9.{i // 4}", f"1.2.9.{i // 4}.1"
        ds.PatientID, ds.Modality = f"Q{i // 8}", "CR"
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = bytes(8 * 8 * 2)
        d = root / "PACS" / f"SER{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        name = (f"1.3.12.2.1107.5.2.32.35162.{i}", f"IM{i:04d}", f"image{i}.v2")[i % 3]
        ds.save_as(d / name, enforce_file_format=True)
    studies = sorted(p for p in root.glob("train/*/*/*") if p.is_dir())
    for i in range(n_other):
        d = studies[i % len(studies)] if studies else root
        name = ("README", f"notes{i}.v2", f"Thumbs{i}")[i % 3]
        (d / name).write_text("not an image: a note beside the study\n")


def make_dicom_tree(root: Path, n_files: int) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.{i}"
        ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, f"1.2.3.4.{i}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"1.2.3.{i // 4}", f"1.2.3.{i // 4}.1"
        ds.PatientID, ds.PatientName, ds.Modality, ds.BodyPartExamined = f"P{i // 8}", "Bench^Patient", "CR", "CHEST"
        ds.InstanceNumber = i % 4 + 1
        ds.StudyDescription, ds.SeriesDescription = "CHEST PA", "PA"
        ds.Rows = ds.Columns = 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.PixelData = bytes(16 * 16 * 2)
        ds.save_as(_p(root, i), enforce_file_format=True)


def _p(root: Path, i: int) -> Path:
    d = root / f"sub{i % 50:02d}"
    d.mkdir(exist_ok=True)
    return d / (f"IM{i:06d}.dcm" if i % 2 else f"IM{i:06d}")  # half PACS-named: sniffed


def bench_scan(work: Path, n_mura: int, n_dicom: int) -> dict:
    from radview.io import scan

    os.environ["RADVIEW_HOME"] = str(work / "home")
    mura = work / "MURA-v1.1"
    t = time.perf_counter()
    n_unnamed = n_mura // 10  # 10 % of the files have names that do not say what they are
    make_mura_tree(mura, n_mura - n_unnamed)
    make_unnamed_extras(mura, n_unnamed // 2, n_unnamed - n_unnamed // 2)
    t_make = time.perf_counter() - t
    # baseline: a bare os.walk listing of the same tree (the least any scan must do)
    t = time.perf_counter()
    n_walk = sum(len(f) for _, _, f in os.walk(mura))
    t_walk = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    r = scan(mura)
    t_cold, c_cold = time.perf_counter() - t, time.process_time() - c
    n_views = sum(len(s.views) for s in r.studies)
    t, c = time.perf_counter(), time.process_time()
    r2 = scan(mura)
    t_warm, c_warm = time.perf_counter() - t, time.process_time() - c
    dic = work / "dicom"
    make_dicom_tree(dic, n_dicom)
    import pydicom

    files = sorted(p for p in dic.rglob("*") if p.is_file())
    t = time.perf_counter()
    for f in files[:1000]:
        pydicom.dcmread(f, stop_before_pixels=True)
    t_pyd = (time.perf_counter() - t) / min(1000, len(files))
    t = time.perf_counter()
    rd = scan(dic)
    t_dcold = time.perf_counter() - t
    t = time.perf_counter()
    rd2 = scan(dic)
    t_dwarm = time.perf_counter() - t
    return {"n_unnamed": n_unnamed, "n_mura": n_walk, "views": n_views, "studies": len(r.studies), "t_make": t_make, "t_walk": t_walk,
            "t_cold": t_cold, "t_warm": t_warm, "c_cold": c_cold, "c_warm": c_warm, "read_warm": r2.n_read, "n_dicom": len(files),
            "dicom_studies": len(rd.studies), "t_dcold": t_dcold, "t_dwarm": t_dwarm, "read_dwarm": rd2.n_read,
            "t_pyd": t_pyd, "errors": len(r.errors) + len(rd.errors)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller trees (4,000 PNGs, 1,000 DICOMs)")
    ap.add_argument("--workdir", help="where to generate data (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="radview-bench-io-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        d = bench_display(work, args.repeat)
        print("== display path: 2500x2048 16-bit MONOCHROME1 DICOM, file -> uint8 (median of runs)")
        print(f"(a) dcmread + pixel_array                      {d['a'] * 1000:7.1f} ms   1.00x (a)")
        print(f"(b) pydicom modality+VOI LUT + 8-bit scaling   {d['b'] * 1000:7.1f} ms   {d['b'] / d['a']:5.2f}x (a)")
        print(f"radview load_frame + display_image (full res)  {d['full'] * 1000:7.1f} ms   {d['full'] / d['a']:5.2f}x (a)"
              f"   {d['b'] / d['full']:5.1f}x faster than (b)   [target <= 2.0x (a), >= 8x faster than (b)]")
        print(f"radview at screen size (max_size=1280)         {d['screen'] * 1000:7.1f} ms   {d['screen'] / d['a']:5.2f}x (a)"
              f"   {d['b'] / d['screen']:5.1f}x faster than (b)")
        print(f"radview re-window of a loaded frame (W/L drag) {d['wl'] * 1000:7.1f} ms   {d['wl'] / d['a']:5.2f}x (a)")
        print(f"max |radview - pydicom| display difference: {d['maxdiff']} grey level(s)")
        n_mura, n_dicom = (4000, 1000) if args.quick else (40000, 10000)
        s = bench_scan(work, n_mura, n_dicom)
        print(f"\n== scan (tree generated in {s['t_make']:.1f} s)")
        print(f"MURA tree, {s['n_mura']} files ({s['n_unnamed']} of them with names that say nothing: PACS-named "
              f"DICOMs and other files, sniffed) -> {s['studies']} studies / {s['views']} views")
        print(f"  os.walk listing only (baseline)  {s['t_walk']:6.2f} s   1.00x")
        scale = 40000 / s["n_mura"]
        print(f"  radview scan, cold               {s['t_cold']:6.2f} s   {s['t_cold'] / s['t_walk']:5.2f}x walk"
              f"   (CPU {s['c_cold']:.2f} s)"
              f"   [target <= 3 s for 40,000: {'met' if s['t_cold'] * scale <= 3 else 'NOT met'}"
              f"{'; CPU time met' if s['c_cold'] * scale <= 3 < s['t_cold'] * scale else ''}]")
        print(f"  radview scan, warm (unchanged)   {s['t_warm']:6.2f} s   {s['t_warm'] / s['t_walk']:5.2f}x walk"
              f"   (CPU {s['c_warm']:.2f} s)   files re-read: {s['read_warm']}"
              f"   [target <= 1 s for 40,000: {'met' if s['t_warm'] * scale <= 1 else 'NOT met'}"
              f"{'; CPU time met' if s['c_warm'] * scale <= 1 < s['t_warm'] * scale else ''}]")
        print(f"  (machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores;"
              " wall times stretch with it, CPU times much less)")
        rate = s["n_dicom"] / s["t_dcold"]
        print(f"DICOM tree, {s['n_dicom']} files -> {s['dicom_studies']} studies")
        print(f"  pydicom dcmread(stop_before_pixels) alone: {1 / s['t_pyd']:8.0f} files/s   1.00x")
        print(f"  radview scan, cold:                        {rate:8.0f} files/s   {rate * s['t_pyd']:5.2f}x"
              f"   [target >= 2,000 files/s: {'met' if rate >= 2000 else 'NOT met'}]")
        print(f"  radview scan, warm:                        {s['t_dwarm']:6.2f} s   files re-read: {s['read_dwarm']}")
        print(f"errors reported: {s['errors']}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
