# Sourced by the other scripts: a project venv with the package and its test extras installed.
# When it has to make or update the venv it says so on stderr, as it starts and as it ends (with its time);
# pip's own output goes to .pulumi-local/logs/venv.log, whose last lines it prints if pip fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
# The package needs 3.11 (exception notes, among others); say so rather than fail later on an AttributeError.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "pulumi-mlflow-runs needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=python3.11." >&2
  exit 1
}
if [ ! -x .venv/bin/python ] || [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  _venv_log=.pulumi-local/logs/venv.log
  _venv_start=$SECONDS
  if [ ! -x .venv/bin/python ]; then
    echo "venv: creating .venv ($("$PYTHON" --version 2>&1)) and installing the package with its test extras... (log: $_venv_log)" >&2
  else
    echo "venv: installing the package with its test extras into .venv... (log: $_venv_log)" >&2
  fi
  mkdir -p .pulumi-local/logs
  set +e # the status is read below (each step chained: a caller's `source … &&` turns errexit off here)
  (
    if [ ! -x .venv/bin/python ]; then
      "$PYTHON" -m venv .venv && .venv/bin/python -m pip install --upgrade pip || exit
    fi
    .venv/bin/python -m pip install -e '.[test]' && touch .venv/.installed
  ) >"$_venv_log" 2>&1
  _venv_status=$?
  set -e
  if [ "$_venv_status" -ne 0 ]; then
    echo "venv: failed (exit $_venv_status) after $((SECONDS - _venv_start)) s; the last 30 lines of $_venv_log:" >&2
    tail -n 30 "$_venv_log" | sed 's/^/    /' >&2
    echo "venv: the whole output: $_venv_log" >&2
    exit "$_venv_status"
  fi
  echo "venv: ready in $((SECONDS - _venv_start)) s" >&2
  unset _venv_log _venv_start _venv_status
fi
export PATH="$PWD/.venv/bin:$PATH"
