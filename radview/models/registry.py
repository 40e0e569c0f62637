"""Bundled and user models: list, inspect, load, import.

- `list_models() -> list[ModelInfo]`: bundled models (`resources/models/<name>/`) and user models
  (`paths.user_models_dir()/<name>/`; a user model with a bundled model's name replaces it, which
  is how `radview models import WEIGHTS --name mura-densenet169` installs weights for a bundled
  manifest). Every entry says whether its weights are installed and, if not, why. A broken
  folder is listed with its reason; it never hides the others.
- `get_model_info(name) -> ModelInfo`; raises `ModelError`.
- `load_model(name, device=None) -> LoadedModel`: sha256 checked, `torch.load(weights_only=True)`
  (never unpickles code), strict state-dict load into the manifest's architecture; every failure
  raises `ModelError` naming the model and the reason. TorchScript weights run code from the file:
  refused unless the user sets RADVIEW_ALLOW_TORCHSCRIPT=1, and never loaded by `import_model`
  (which only checks the archive). `load_model_folder(folder)` loads a folder without installing.
  Loaded models are cached per (folder, weights file state, device); `clear_cache()` drops them.
- `import_model(path_or_dir, manifest=None, name=None, force=False) -> ModelInfo`: a model
  folder, or a weights file plus a manifest (a path, or the name of an existing model whose
  manifest is the template). The weights are test-loaded before anything is installed.
- `select_device(preferred=None) -> torch.device`: cuda, then mps, else cpu; 'cpu', 'cuda:1',
  'mps' or RADVIEW_DEVICE override; an unavailable device is an error.
- `configure_threads(n=None)`: torch intra-op threads = max(1, cores - 1) so that inference leaves
  a core to the GUI; RADVIEW_TORCH_THREADS or `n` override. Called by load_model.
- Classifiers on CPU are converted to channels_last memory format at load (RADVIEW_CHANNELS_LAST=0
  turns it off); inputs follow in the engine. LoadedModel.extra['channels_last'] says so. Their
  forward runs in micro-batches of extra['compute_batch'] images (default 2 on CPU, whatever the
  decode batch; RADVIEW_COMPUTE_BATCH overrides): much faster per image on a small-cache CPU.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radview import paths
from radview.models.manifest import (MANIFEST_NAME, Manifest, ManifestError, WeightsSpec, load_manifest,
                                     manifest_from_dict, sha256_file, write_manifest)


class ModelError(RuntimeError):
    """A model cannot be listed, loaded or imported. str(err) names the model and the reason."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"model {name}: {reason}")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # 'bundled' | 'user'
    folder: str
    installed: bool
    status: str  # 'installed' or why not
    manifest: Manifest | None = None

    @property
    def version(self) -> str:
        return self.manifest.version if self.manifest else ""

    @property
    def task(self) -> str:
        return self.manifest.task if self.manifest else ""

    @property
    def arch(self) -> str:
        return self.manifest.arch if self.manifest else ""

    @property
    def classes(self) -> tuple[str, ...]:
        return self.manifest.classes if self.manifest else ()


@dataclass(eq=False)
class LoadedModel:
    """A model ready to run: eval mode, on `device`, parameters frozen (inference and CAM need
    no parameter gradients). gate: the model's own FeatureGate, if it has one."""

    info: ModelInfo
    manifest: Manifest
    module: Any  # torch.nn.Module or a TorchScript module
    device: Any
    gate: Any = None
    scripted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def classes(self) -> tuple[str, ...]:
        return self.manifest.classes

    @property
    def task(self) -> str:
        return self.manifest.task


# --------------------------------------------------------------------------- listing

_SHA_CACHE: dict[tuple[str, int, int], str] = {}
_LOCK = threading.RLock()


def _file_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        sha = _SHA_CACHE.get(key)
    if sha is None:
        sha = sha256_file(path)
        with _LOCK:
            _SHA_CACHE[key] = sha
    return sha


def bundled_dir() -> Path:
    return paths.resources_dir() / "models"


def weights_status(m: Manifest) -> tuple[bool, str]:
    p = m.weights_path
    if not p.is_file():
        hint = f"train it with {m.training['script']} or " if m.training.get("script") else ""
        return False, (f"weights not installed ({m.weights.file} absent; {hint}"
                       f"`radview models import WEIGHTS --name {m.name}`)")
    if not m.weights.sha256:
        return False, f"weights not installed (manifest has no sha256 for {m.weights.file}; import the file)"
    try:
        sha = _file_sha(p)
    except OSError as exc:
        return False, f"weights unreadable ({m.weights.file}: {exc.strerror or exc})"
    if sha != m.weights.sha256:
        return False, (f"weights file {m.weights.file} does not match the manifest's sha256 "
                       f"(corrupt or replaced: {sha[:12]}... != {m.weights.sha256[:12]}...)")
    return True, "installed"


def _info(folder: Path, source: str) -> ModelInfo:
    try:
        m = load_manifest(folder)
    except ManifestError as exc:
        return ModelInfo(folder.name, source, str(folder), False, f"bad manifest: {exc.reason}")
    ok, status = weights_status(m)
    return ModelInfo(m.name, source, str(folder), ok, status, m)


def _folders(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST_NAME).exists())
    except OSError:
        return []


def list_models() -> list[ModelInfo]:
    """All models by name; user models replace bundled ones of the same name."""
    found: dict[str, ModelInfo] = {}
    for folder in _folders(bundled_dir()):
        info = _info(folder, "bundled")
        found[info.name] = info
    for folder in _folders(paths.user_models_dir()):
        info = _info(folder, "user")
        found[info.name] = info
    return [found[k] for k in sorted(found)]


def get_model_info(name: str) -> ModelInfo:
    models = list_models()
    for info in models:
        if info.name == name:
            return info
    known = ", ".join(i.name for i in models) or "none"
    raise ModelError(name, f"no such model (known: {known})")


# --------------------------------------------------------------------------- device, threads

_THREADS_SET = False


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (once unless n is given); returns the count."""
    global _THREADS_SET
    import torch

    if n is None:
        if _THREADS_SET:
            return torch.get_num_threads()
        env = os.environ.get("RADVIEW_TORCH_THREADS")
        n = int(env) if env and env.isdigit() else max(1, (os.cpu_count() or 2) - 1)
    n = max(1, int(n))
    torch.set_num_threads(n)
    _THREADS_SET = True
    return n


def select_device(preferred: str | None = None):
    """cuda, then mps, else cpu; `preferred` ('cpu', 'cuda', 'cuda:0', 'mps', 'auto') or
    RADVIEW_DEVICE overrides. Raises ModelError if the requested device is not available."""
    import torch

    want = (preferred or os.environ.get("RADVIEW_DEVICE") or "auto").strip().lower()
    if want == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(want)
    except (RuntimeError, ValueError):
        raise ModelError("-", f"unknown device {preferred!r} (use cpu, cuda, cuda:N, mps or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("-", f"device {want} requested but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelError("-", f"device {want} requested but only {torch.cuda.device_count()} CUDA devices exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("-", "device mps requested but MPS is not available here")
    return dev


# --------------------------------------------------------------------------- loading

_CACHE: dict[tuple, LoadedModel] = {}


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def _unwrap_checkpoint(obj: Any) -> tuple[dict, dict | None]:
    """(state_dict, gate state or None) from a bare state_dict or a common checkpoint layout."""
    gate = None
    if isinstance(obj, dict):
        gate = obj.get("gate") if isinstance(obj.get("gate"), dict) else None
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError("the file holds no state_dict")
    sd = {}
    for k, v in obj.items():
        if not hasattr(v, "dtype"):
            continue
        k = k[7:] if k.startswith("module.") else k  # DataParallel/DDP prefix
        sd[k] = v.float() if v.is_floating_point() else v
    return sd, gate


def _check_torchscript_archive(path: Path, name: str) -> None:
    """A TorchScript file is a zip with code/ and data.pkl entries: checked without loading it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(name, f"{path.name} is not a TorchScript archive: {exc}") from None
    if not any("/code/" in n or n.startswith("code/") for n in names) or not any(n.endswith("data.pkl") for n in names):
        raise ModelError(name, f"{path.name} is not a TorchScript archive (no code/ or data.pkl entry)")


def _load_module(m: Manifest, device, name: str, execute: bool = True):
    """(module, gate, scripted). execute=False (import): a TorchScript file is only checked to be an
    archive, never loaded (loading runs its code)."""
    import torch

    path = m.weights_path
    if m.weights.format == "torchscript":
        _check_torchscript_archive(path, name)
        if not execute:
            return None, None, True
        if not torchscript_allowed():
            raise ModelError(name, "TorchScript weights refused (set RADVIEW_ALLOW_TORCHSCRIPT=1 to trust them)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated upstream
                module = torch.jit.load(str(path), map_location=device)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a clear model error
            raise ModelError(name, f"cannot load TorchScript {path.name}: {exc}") from None
        return module.eval(), None, True
    from radview.models import arch as archmod

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(name, f"cannot read weights {path.name} (weights_only=True): {first}") from None
    try:
        sd, gate_state = _unwrap_checkpoint(obj)
    except ValueError as exc:
        raise ModelError(name, f"{path.name}: {exc}") from None
    try:
        module = archmod.build(m.arch, m.num_outputs, m.task, **m.arch_kwargs)
    except (archmod.ArchError, TypeError) as exc:
        raise ModelError(name, f"cannot build architecture {m.arch}: {exc}") from None
    result = module.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise ModelError(name, f"weights {path.name} do not fit {m.arch} with {m.num_outputs} outputs: "
                               + ", ".join(parts))
    gate = None
    if gate_state is not None and "class_means" in gate_state:
        from radview.models.domain import FeatureGate

        gate = FeatureGate.from_state(gate_state, m.gate.get("threshold"))
    return module, gate, False


def _shape_error(exc: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
    return lines[0] if lines else str(exc).splitlines()[0]


def load_model(name: str, device=None) -> LoadedModel:
    """Load an installed model by name (see module doc). device: None/'auto'/'cpu'/torch.device."""
    return _load_info(get_model_info(name), device)


def load_model_folder(folder: str | os.PathLike, device=None) -> LoadedModel:
    """Load the model in `folder` (manifest + weights) without installing it (training scripts,
    tests). Same checks as load_model."""
    info = _info(Path(folder), "folder")
    if info.manifest is None:
        raise ModelError(Path(folder).name, info.status)
    return _load_info(info, device)


def torchscript_allowed() -> bool:
    """TorchScript files run code from the file: loaded only when the user opts in with
    RADVIEW_ALLOW_TORCHSCRIPT=1 (never on import, never by default)."""
    return os.environ.get("RADVIEW_ALLOW_TORCHSCRIPT", "").strip().lower() in ("1", "yes", "true")


def _load_info(info: ModelInfo, device=None) -> LoadedModel:
    import torch

    name = info.name
    if info.manifest is None or not info.installed:
        raise ModelError(name, info.status)
    if info.manifest.weights.format == "torchscript" and not torchscript_allowed():
        raise ModelError(name, "weights are TorchScript, which can run arbitrary code and is not loaded with "
                               "weights_only=True; refused (export a state_dict, or set "
                               "RADVIEW_ALLOW_TORCHSCRIPT=1 if you trust this file)")
    dev = device if isinstance(device, torch.device) else select_device(device)
    m = info.manifest
    st = m.weights_path.stat()
    key = (info.folder, info.source, st.st_size, st.st_mtime_ns, m.weights.sha256, str(dev))
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    configure_threads()
    # Re-hash at load time (the listing cache is keyed by mtime; a load must see the bytes).
    if sha256_file(m.weights_path) != m.weights.sha256:
        raise ModelError(name, f"weights file {m.weights.file} does not match the manifest's sha256")
    try:
        module, gate, scripted = _load_module(m, dev, name)
    except ModelError:
        raise
    except RuntimeError as exc:
        raise ModelError(name, f"weights {m.weights.file} do not fit {m.arch}: {_shape_error(exc)}") from None
    module.eval()
    extra: dict[str, Any] = {}
    if not scripted:
        module.to(dev)
        for p in module.parameters():
            p.requires_grad_(False)
        if dev.type == "cpu" and m.task != "detection" and os.environ.get("RADVIEW_CHANNELS_LAST", "1") != "0":
            # oneDNN convolutions run 1.4-1.6x faster on NHWC tensors on CPU (bench_models.py)
            module.to(memory_format=torch.channels_last)
            extra["channels_last"] = True
        if dev.type == "cpu" and m.task != "detection":
            # CPU forward in micro-batches: per image, batch 2 runs ~2x faster than batch 8 here
            # (activations stay in cache; scripts/bench_models.py measures it)
            env = os.environ.get("RADVIEW_COMPUTE_BATCH", "")
            extra["compute_batch"] = int(env) if env.isdigit() and int(env) > 0 else 2
    loaded = LoadedModel(info=info, manifest=m, module=module, device=dev, gate=gate, scripted=scripted,
                         extra=extra)
    with _LOCK:
        _CACHE[key] = loaded
    return loaded


# --------------------------------------------------------------------------- importing


def _template_manifest(manifest: str | os.PathLike | Manifest | dict | None, name: str | None,
                       weights_file: Path) -> Manifest:
    if isinstance(manifest, Manifest):
        return manifest
    if isinstance(manifest, dict):
        return manifest_from_dict(manifest, "<manifest>")
    if manifest is not None:
        try:
            return load_manifest(manifest)
        except ManifestError as exc:
            raise ModelError(name or weights_file.stem, f"bad manifest: {exc}") from None
    if name is None:
        raise ModelError(weights_file.stem, "a weights file needs a manifest (--manifest) or the name of "
                                            "a listed model whose manifest to use (--name)")
    info = get_model_info(name)
    if info.manifest is None:
        raise ModelError(name, info.status)
    return info.manifest


def import_model(path_or_dir: str | os.PathLike, manifest: str | os.PathLike | Manifest | dict | None = None,
                 name: str | None = None, force: bool = False, device=None) -> ModelInfo:
    """Install a model into the user models folder (see module doc); returns its ModelInfo.
    The weights are hashed (a manifest's sha256, when given, must match) and test-loaded
    first; nothing is installed if that fails."""
    src = Path(path_or_dir)
    if not src.exists():
        raise ModelError(name or src.name, f"{src}: no such file or folder")
    if src.is_dir():
        try:
            m = load_manifest(src)
        except ManifestError as exc:
            raise ModelError(name or src.name, f"bad manifest: {exc}") from None
        weights = src / m.weights.file
        extra = [p for p in src.iterdir() if p.is_file() and p.name not in (MANIFEST_NAME, m.weights.file)]
    else:
        weights = src
        m = _template_manifest(manifest, name, src)
        extra = []
        if m.folder and (Path(m.folder) / m.card).is_file():
            extra.append(Path(m.folder) / m.card)
    target_name = name or m.name
    if not weights.is_file():
        raise ModelError(target_name, f"weights file {weights} not found")
    sha = sha256_file(weights)
    if src.is_dir() and m.weights.sha256 and m.weights.sha256 != sha:
        raise ModelError(target_name, f"{weights.name} does not match the manifest's sha256 (corrupt or replaced)")
    wfile = m.weights.file if src.is_dir() else ("weights" + (weights.suffix or ".pt"))
    new = m.with_changes(name=target_name, weights=WeightsSpec(file=wfile, sha256=sha, format=m.weights.format,
                                                               dtype=m.weights.dtype))
    dest = paths.user_models_dir() / target_name
    if dest.exists() and not force:
        raise ModelError(target_name, f"a user model of that name exists in {dest} (use --force to replace)")
    stage = Path(tempfile.mkdtemp(prefix=f".import-{target_name}-", dir=paths.user_models_dir()))
    try:
        shutil.copyfile(weights, stage / wfile)
        for p in extra:
            shutil.copyfile(p, stage / p.name)
        write_manifest(new.with_changes(folder=str(stage)), stage)
        staged = load_manifest(stage)
        try:
            _load_module(staged, select_device("cpu") if device is None else select_device(device), target_name,
                         execute=False)
        except ModelError:
            raise
        except RuntimeError as exc:
            raise ModelError(target_name, f"weights do not fit {m.arch}: {_shape_error(exc)}") from None
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(stage, dest)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    clear_cache()
    return get_model_info(target_name)
