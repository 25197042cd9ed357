#!/usr/bin/env bash
# Create ./.venv with Python 3.13 and install sb3-mario into it (editable, with the dev tools).
# Re-running it is cheap: it reinstalls only when pyproject.toml changed. Needs nothing but Python 3.13
# (on PATH as python3.13, under pyenv, or named by $PYTHON) and access to PyPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  local candidate
  for candidate in python3.13 "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 \
      "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
    # pyenv's shims exist on PATH even when they cannot run: ask each candidate for its version
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
      "$candidate" -c 'import sys; print(sys.executable)'; return
    fi
  done
  echo "scripts/setup.sh: no Python 3.13 found; install it (e.g. 'pyenv install 3.13') or set PYTHON=/path/to/python3.13" >&2
  exit 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(find_python)
  echo "Creating .venv with $python"
  "$python" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "Installing sb3-mario and its dependencies into .venv (the first time downloads torch: a few minutes)"
  # (grep drops the noise of this machine's pip config; pipefail keeps pip's exit status)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
  .venv/bin/python -c "import sb3_mario, sb3_mario_hook" || { echo "scripts/setup.sh: installation failed" >&2; exit 1; }
  touch .venv/.installed
fi
