# Shared by scripts/run and scripts/test: create .venv if missing and install radview into it.
# Idempotent: the install is skipped while pyproject.toml is unchanged since the last one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RADVIEW_VENV:-$ROOT/.venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
if [ -z "$PY" ] || ! "$PY" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "radview needs Python >= 3.11 (found: ${PY:-none}); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "radview: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.radview-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)-${RADVIEW_EXTRAS:-test}"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "radview: installing into $VENV (first time: a few minutes, torch is large)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[${RADVIEW_EXTRAS:-test}]" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -c "import radview, torch, torchvision, PySide6, pydicom" \
    || { echo "radview: installation failed (see the messages above)" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
fi
