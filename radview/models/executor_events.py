"""The typed requests the model executor takes and the events it reports (radview.models.executor).
Plain frozen dataclasses: no torch, no Qt."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class LoadModel:
    name: str
    device: str = "auto"


@dataclass(frozen=True)
class CamRequest:
    """Grad-CAM of one image. background: for a panel (queued after the visible ones)."""

    key: Any
    ref: Any
    target: str | None = None
    layer: str | None = None
    background: bool = False


@dataclass(frozen=True)
class ModelViewRequest:
    key: Any
    ref: Any
    target: str | None = None
    layer: str | None = None


@dataclass(frozen=True)
class CallRequest:
    """fn(backend) on the executor thread; its result comes back as Called(gen, key, result)."""

    key: Any
    fn: Callable[[Any], Any]


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ready:
    models: list


@dataclass(frozen=True)
class ModelLoaded:
    gen: int
    info: Any


@dataclass(frozen=True)
class PredictionReady:
    gen: int
    pred: Any


@dataclass(frozen=True)
class StudyPredictionReady:
    gen: int
    study_prediction: Any


@dataclass(frozen=True)
class CamReady:
    gen: int
    key: Any
    cam: Any


@dataclass(frozen=True)
class ModelViewReady:
    gen: int
    key: Any
    out: Any


@dataclass(frozen=True)
class Called:
    gen: int
    key: Any
    result: Any


@dataclass(frozen=True)
class ProgressEvent:
    gen: int
    done: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class Failed:
    gen: int
    error: BaseException
    where: str = ""


@dataclass(frozen=True)
class BodyPartReady:
    gen: int
    study_key: str
    verdict: Any  # radview.models.routing.BodyPartVerdict


@dataclass(frozen=True)
class SidePredictionReady:
    gen: int
    model: str
    pred: Any


@dataclass(frozen=True)
class SideStudyReady:
    gen: int
    model: str
    study_prediction: Any


@dataclass(frozen=True)
class Skipped:
    """A routed model was not run on a study (outside its domain); reason says why."""

    gen: int
    model: str
    study_key: str
    reason: str


@dataclass(frozen=True)
class Idle:
    gen: int
