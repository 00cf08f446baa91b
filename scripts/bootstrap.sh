# Sourced by the other scripts: a project venv with the package and its test extras installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
# The package needs 3.11 (exception notes, among others); say so rather than fail later on an AttributeError.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "pulumi-mlflow-runs needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=python3.11." >&2
  exit 1
}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install --quiet -e '.[test]'
  touch .venv/.installed
fi
export PATH="$PWD/.venv/bin:$PATH"
