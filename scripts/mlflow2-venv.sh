#!/usr/bin/env bash
# A separate venv holding the last MLflow 2.x server, for the tests that also run against it
# (MLFLOW_SERVER_PYTHON=<the path this prints>). Idempotent and quiet; the last line printed is the
# venv's python. The tests' own client stays the project venv's MLflow 3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-mlflow2
# mlflow 2.22 pins nothing below SQLAlchemy 2.1, whose API it does not support: cap it here.
REQUIREMENTS=("mlflow==2.22.*" "sqlalchemy<2.1")
STAMP="$VENV/.installed"
WANT="${REQUIREMENTS[*]}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}" >&2
  "$VENV/bin/python" -c 'import mlflow, sys; sys.exit(not mlflow.__version__.startswith("2.22."))' >&2
  printf '%s' "$WANT" >"$STAMP"
fi
echo "$PWD/$VENV/bin/python"
