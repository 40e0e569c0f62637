"""radview's processes import torch without triton (the GPU compiler it never uses) and, with no GPU,
without the CUDA libraries' pages resident: each case runs in a fresh interpreter, since the choice
is made before torch is imported."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest


# The bundled detector (torchvision FCOS: torchvision.ops imports torch._dynamo) predicts and gives a
# box Grad-CAM on a real-size image, then the process says what it loaded.
PROBE = r"""
import json, os, sys, tempfile
import numpy as np
from PIL import Image
from radview import torch_env
applied = torch_env.lean_import()
from radview.models import registry
from radview.models.cam import grad_cam
from radview.models.engine import iter_predict
model = registry.load_model("rsna-pneumonia", "cpu")
img = (np.random.default_rng(0).random((512, 512)) * 200).astype(np.uint8)
img[150:350, 100:250] += 50
path = os.path.join(tempfile.mkdtemp(), "chest.png")
Image.fromarray(img).save(path)
(before,) = iter_predict([path], model, decoder="thread")
maps = open("/proc/self/maps").read()
cuda_libs = bool(torch_env.gpu_library_mappings(open("/proc/self/smaps").read()))
released = torch_env.release_unused_gpu_pages()
(after,) = iter_predict([path], model, decoder="thread")
cam = grad_cam(model, path)
again = torch_env.release_unused_gpu_pages()
print(json.dumps({"applied": applied, "lean": torch_env.applied(), "dynamo": "torch._dynamo" in sys.modules,
                  "triton_lib": "libtriton" in maps, "probs": list(after.probs), "same": before.probs == after.probs,
                  "boxes": [b.as_xyxy() for b in before.boxes] == [b.as_xyxy() for b in after.boxes],
                  "cam": list(cam.data.shape), "finite": bool(np.isfinite(cam.data).all()),
                  "cuda_libs": cuda_libs, "released": released, "again": again,
                  "gpu": bool(sys.modules["torch"].cuda.is_available())}))
"""


def _output(code: str, **env) -> str:
    """What a fresh interpreter running `code` prints (it must succeed)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _run(code: str, **env) -> list[str]:
    return _output(code, **env).split()


def _probe(**env) -> dict:
    return json.loads(_output(PROBE, **env).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe() -> dict:
    """One fresh interpreter for the two tests below (importing torch there takes seconds)."""
    return _probe(RADVIEW_TRITON="", RADVIEW_KEEP_GPU_PAGES="")


def test_models_run_without_triton_loaded(probe):
    r = probe
    assert r["applied"] and r["lean"]
    assert r["dynamo"], "torchvision no longer imports torch._dynamo: this module may be unneeded"
    assert not r["triton_lib"]
    assert len(r["probs"]) == 2 and abs(sum(r["probs"]) - 1) < 1e-4
    assert r["cam"] == [512, 512] and r["finite"]


def test_cuda_library_pages_released_and_models_unchanged(probe):
    """On a machine without a GPU the CUDA wheels' library pages leave the process; the same
    image gives the same probabilities and boxes after that, and Grad-CAM still runs."""
    r = probe
    assert r["same"] and r["boxes"] and r["finite"]
    if r["gpu"] or not r["cuda_libs"]:
        assert r["released"] == 0  # a GPU in use, or a CPU build of torch: nothing to release
    else:
        assert r["released"] > 50 * 2**20, r  # measured ~280 MB with torch 2.14.1+cu130
        assert r["again"] < r["released"] / 4  # what the models touched since is small


def test_gpu_library_mappings_only_clean_read_only_ones():
    smaps = """\
7f0000000000-7f0000100000 r-xp 00000000 08:01 1 /v/site-packages/nvidia/cu13/lib/libcublasLt.so.13
Rss:                1024 kB
Anonymous:             0 kB
7f0000100000-7f0000200000 r--p 00100000 08:01 1 /v/site-packages/torch/lib/libtorch_cuda.so
Rss:                  64 kB
Anonymous:            64 kB
7f0000200000-7f0000300000 rw-p 00200000 08:01 1 /v/site-packages/nvidia/cu13/lib/libnvrtc.so.13
Rss:                  64 kB
Anonymous:             0 kB
7f0000300000-7f0000400000 r-xp 00000000 08:01 2 /v/site-packages/torch/lib/libtorch_cpu.so
Rss:                 512 kB
Anonymous:             0 kB
7f0000400000-7f0000500000 r--p 00000000 08:01 3 /v/site-packages/torch/lib/libc10_cuda.so
Rss:                   0 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
Rss:                  64 kB
Anonymous:            64 kB
"""
    from radview.torch_env import gpu_library_mappings

    # only the clean read-only CUDA mapping with resident pages: never one with a private (written)
    # page, a writable one, torch's CPU library, an empty one or anonymous memory
    assert gpu_library_mappings(smaps) == [(0x7F0000000000, 0x100000, "/v/site-packages/nvidia/cu13/lib/libcublasLt.so.13")]


def test_opt_out_keeps_triton_importable():
    code = "import sys; from radview import torch_env; print(torch_env.lean_import(), 'triton' in sys.modules)"
    assert _run(code, RADVIEW_TRITON="1") == ["False", "False"]


def test_too_late_once_torch_is_imported():
    """After `import torch` nothing changes: torchvision's import then loads triton as before."""
    code = ("import sys, torch; from radview import torch_env; a = torch_env.lean_import(); import torchvision; "
            "print(a, torch_env.applied(), 'libtriton' in open('/proc/self/maps').read())")
    try:
        importlib.metadata.version("triton")
        installed = True
    except importlib.metadata.PackageNotFoundError:
        installed = False
    assert _run(code, RADVIEW_TRITON="") == ["False", "False", str(installed)]


def test_the_cli_and_the_window_apply_it():
    """`radview ...` (which also starts the app) and the window itself decide before torch is
    imported (the retraining child, a spawned process, calls it first thing too)."""
    code = ("import sys; from radview.cli import main; main(['models']); "
            "from radview.gui.app import make_app; from radview.gui.main_window import MainWindow; "
            "app = make_app(); w = MainWindow(deferred=True); "
            "print('RESULT', sys.modules.get('triton', 0) is None)")
    for env in ({"RADVIEW_TRITON": ""}, {"RADVIEW_TRITON": "1"}):
        out = _output(code, QT_QPA_PLATFORM="offscreen", **env)
        line = [x for x in out.splitlines() if x.startswith("RESULT")][-1]
        assert line.split()[1] == str(env["RADVIEW_TRITON"] != "1"), env
