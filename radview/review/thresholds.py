"""A site's own decision threshold per model, kept apart from the model's shipped one.

Stored in ``<user_home>/site_thresholds.json`` (written atomically), one entry per model name:
the value, who chose it, when, for which model version, on how many studies and by which
criterion. Everything that shows a threshold shows its source: 'model' (the manifest's) or
'site' (chosen here)."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from radview import paths

__all__ = ["SiteThreshold", "thresholds_path", "save_site_threshold", "site_threshold",
           "clear_site_threshold", "effective_threshold", "list_site_thresholds"]

FILE_NAME = "site_thresholds.json"


@dataclass(frozen=True)
class SiteThreshold:
    model: str
    threshold: float
    model_version: str = ""
    chosen_by: str = ""
    chosen_at: float = 0.0  # unix time
    criterion: str = ""  # e.g. 'youden', 'kappa', 'sensitivity>=0.90', 'manual'
    n_studies: int = 0
    note: str = ""
    source: str = "site"


def thresholds_path() -> Path:
    return paths.user_home() / FILE_NAME


def _read() -> dict[str, dict]:
    p = thresholds_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: unreadable site thresholds file ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object of model name -> threshold entry")
    return data


def _write(data: dict[str, dict]) -> None:
    from radview.paths import write_json_atomic

    write_json_atomic(thresholds_path(), data)


def save_site_threshold(model: str, threshold: float, *, model_version: str = "",
                        chosen_by: str | None = None, criterion: str = "manual",
                        n_studies: int = 0, note: str = "") -> SiteThreshold:
    """Record the site's threshold for `model` (replacing an earlier one)."""
    threshold = float(threshold)
    if not (0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold {threshold} is outside [0, 1]")
    if chosen_by is None:
        chosen_by = _os_user()
    entry = SiteThreshold(model, threshold, model_version, chosen_by, time.time(), criterion,
                          int(n_studies), note)
    data = _read()
    data[model] = asdict(entry)
    _write(data)
    return entry


def site_threshold(model: str) -> SiteThreshold | None:
    entry = _read().get(model)
    if not entry:
        return None
    fields = SiteThreshold.__dataclass_fields__
    return SiteThreshold(**{k: v for k, v in entry.items() if k in fields})


def list_site_thresholds() -> list[SiteThreshold]:
    return [t for name in sorted(_read()) if (t := site_threshold(name)) is not None]


def clear_site_threshold(model: str) -> bool:
    data = _read()
    if model not in data:
        return False
    del data[model]
    _write(data)
    return True


def effective_threshold(model: str, model_threshold: float | None) -> tuple[float | None, str]:
    """(threshold, source): the site's own when one is saved, else the model's. A corrupt
    thresholds file raises ValueError naming it (never silently falls back)."""
    site = site_threshold(model)
    if site is not None:
        return site.threshold, "site"
    return model_threshold, "model"


def _os_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error worth stopping for
        return ""
