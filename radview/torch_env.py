"""How radview's processes import torch: without the GPU compiler they never use, and without
keeping the CUDA libraries' pages resident on a machine that has no GPU. Imports neither torch
nor Qt.

radview runs its models eagerly (no `torch.compile`). Yet `import torchvision` imports
`torch._dynamo` (torchvision.ops.roi_align asks it whether compiling is supported), and that
imports `triton`, the GPU kernel compiler, whenever the package is installed: with the CUDA
wheels a 95 MB shared library and its Python package, measured +100 MB RSS in every process
that imports torchvision, on a CPU machine as on a GPU one, for nothing. torch treats an
absent triton as "no compiler" (torch.utils._triton.has_triton_package catches the ImportError),
and eager CPU and CUDA inference and training do not need it.

    lean_import()   # at a process entry point, before torch is imported: True if it applied

`RADVIEW_TRITON=1` keeps triton importable (for a user who calls torch.compile in the same
process). Once torch is imported it is too late to change anything: then this does nothing.

The CUDA wheels of torch link its CUDA libraries (cuBLASLt, NVRTC, nvJitLink, libtorch_cuda,
...) whatever the machine: their static initialisers touch ~280 MB of their read-only pages at
`import torch`, measured on this 2-core CPU box, and nothing runs their code again when no GPU
is used. Those pages are clean copies of the files on disk, so the kernel can drop them:

    release_unused_gpu_pages()   # after torch is imported (a model loaded): bytes released

unmaps them from the process (madvise MADV_DONTNEED) when torch sees no CUDA device, on the
CUDA libraries' read-only file mappings that hold no private page (smaps "Anonymous: 0 kB"):
for those, dropping a page only means that a later access reads it back from the file (the
page cache), so it is safe whatever runs next; a mapping that was ever written to (relocated
data) is never touched. The pages stay in the page cache for other processes and the kernel
frees them under memory pressure. `RADVIEW_KEEP_GPU_PAGES=1` turns it off.
"""
from __future__ import annotations

import ctypes
import os
import re
import sys

UNUSED = ("triton",)


def lean_import() -> bool:
    """Mark the unused compiler packages absent for this process (a None entry in sys.modules
    makes `import triton` raise ImportError). Idempotent; a no-op after torch was imported or
    with RADVIEW_TRITON=1."""
    if os.environ.get("RADVIEW_TRITON") == "1" or "torch" in sys.modules:
        return False
    for name in UNUSED:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    return all(sys.modules.get(name, 0) is None for name in UNUSED)


def applied() -> bool:
    """True if this process imports torch without the unused compiler packages."""
    return all(name in sys.modules and sys.modules[name] is None for name in UNUSED)


MADV_DONTNEED = 4
# the libraries of the CUDA wheels (torch/lib and site-packages/nvidia/...), never torch's CPU ones
_GPU_LIB = re.compile(r"(/nvidia/|/libtorch_cuda[^/]*\.so|/libc10_cuda\.so|/libcud[^/]*\.so|/libcublas[^/]*\.so"
                      r"|/libnccl[^/]*\.so|/libnvrtc[^/]*\.so|/libnvJitLink[^/]*\.so|/libcusparse[^/]*\.so"
                      r"|/libcufft[^/]*\.so|/libcurand[^/]*\.so|/libcusolver[^/]*\.so|/libcupti[^/]*\.so"
                      r"|/libnvshmem[^/]*\.so|/libnvToolsExt[^/]*\.so|/libnvjpeg[^/]*\.so|/libtriton[^/]*\.so)")


def gpu_library_mappings(smaps: str) -> list[tuple[int, int, str]]:
    """(start, length, path) of the CUDA libraries' mappings in a /proc/<pid>/smaps text that
    may be dropped: read-only (no 'w'), with resident pages, and no private copy of a page
    (Anonymous: 0 kB: nothing was ever written to them, e.g. not a relocated RELRO segment)."""
    out: list[tuple[int, int, str]] = []
    cur = None
    for line in smaps.splitlines():
        parts = line.split(None, 5)
        if not parts:
            continue
        if not parts[0].endswith(":"):  # a mapping's header: range perms offset dev inode [path]
            cur = None
            if len(parts) == 6 and "w" not in parts[1] and _GPU_LIB.search(parts[5]):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = [lo, hi - lo, parts[5].strip(), 0, 0]
            continue
        if cur is not None and parts[0] in ("Rss:", "Anonymous:"):
            cur[3 if parts[0] == "Rss:" else 4] = int(parts[1])
            if parts[0] == "Anonymous:" and cur[3] > 0 and cur[4] == 0:
                out.append((cur[0], cur[1], cur[2]))
    return out


def _gpu_in_use(torch) -> bool:
    try:
        if torch.cuda.is_initialized() or torch.cuda.is_available():
            return True
    except Exception:  # noqa: BLE001 - a broken CUDA install: treat as "maybe in use", keep its pages
        return True
    return False


def rss_file_bytes() -> int:
    """The process's resident file-backed bytes (RssFile of /proc/self/status), 0 if unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssFile:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def release_unused_gpu_pages() -> int:
    """Unmap the resident pages of the CUDA libraries from this process when torch is imported
    and no GPU is in use; returns the resident file bytes released (0 when nothing applies).
    ~20-80 ms (it reads /proc/self/smaps): call it off the GUI thread, after a model load (the
    pages do not come back: 1.25 MB after a forward + backward pass, so once per load is enough)."""
    torch = sys.modules.get("torch")
    if (torch is None or not sys.platform.startswith("linux")
            or os.environ.get("RADVIEW_KEEP_GPU_PAGES") == "1" or _gpu_in_use(torch)):
        return 0
    try:
        with open("/proc/self/smaps") as fh:
            maps = gpu_library_mappings(fh.read())
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    before = rss_file_bytes()
    for start, length, _path in maps:
        madvise(start, length, MADV_DONTNEED)  # a failure on one range leaves it as it was
    return max(0, before - rss_file_bytes())
