"""The embedded sample studies: real radiographs that installed packages ship.

pydicom-data ships the NEMA WG04 CR radiographs: RG1 (chest PA) and RG3 (distal tibia), both
MONOCHROME1, here in their JPEG 2000 lossless encodings (so the samples also prove that
compressed DICOM opens). Where the project's sibling folder `../shared/data` exists (or
`RADVIEW_SHARED_DATA` names one), its real chest/abdomen PNGs, RSNA challenge DICOMs with the
labels CSV, and chest CR DICOMs are added. Nothing is copied: the sample folder under the user
data folder holds symbolic links (copies only where links are impossible).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

PYDICOM_SAMPLES = ("RG1_J2KR.dcm", "RG3_J2KR.dcm")


def shared_data_dir() -> Path | None:
    env = os.environ.get("RADVIEW_SHARED_DATA")
    cand = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return cand if cand.is_dir() else None


def pydicom_sample(name: str) -> Path | None:
    """Path of a pydicom / pydicom-data test file, without any download attempt."""
    try:
        from pydicom.data import get_testdata_file

        p = get_testdata_file(name, download=False)
    except Exception:  # noqa: BLE001 - missing pydicom-data is reported as None
        return None
    return Path(p) if p else None


def sample_paths() -> dict[str, Path]:
    """{relative name in the sample folder: source path} of every available sample."""
    out: dict[str, Path] = {}
    for name in PYDICOM_SAMPLES:
        p = pydicom_sample(name)
        if p is not None:
            out[f"nema-wg04/{name}"] = p
    shared = shared_data_dir()
    if shared is not None:
        for p in sorted((shared / "dicom").glob("*.dcm")):
            out[f"chest-cr/{p.name}"] = p
        rsna = shared / "rsna-pneumonia"
        if (rsna / "stage_2_train_labels.csv").is_file():
            out["rsna-pneumonia/stage_2_train_labels.csv"] = rsna / "stage_2_train_labels.csv"
            for p in sorted((rsna / "stage_2_train_images").glob("*.dcm")):
                out[f"rsna-pneumonia/stage_2_train_images/{p.name}"] = p
        openi = shared / "openi-chest-abdomen" / "val"
        for p in sorted(openi.glob("*/*.png")):
            out[f"openi/val/{p.parent.name}/{p.name}"] = p
    return out


def sample_folder(dest: str | os.PathLike | None = None) -> Path:
    """Create (or refresh) the sample folder and return it. Default: <user data>/samples."""
    if dest is None:
        from radview.paths import user_home

        dest = user_home() / "samples"
    dest = Path(dest)
    for rel, src in sample_paths().items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            if target.is_symlink() and Path(os.readlink(target)) == src:
                continue
            target.unlink()
        try:
            target.symlink_to(src)
        except OSError:
            shutil.copy2(src, target)
    return dest
