#!/usr/bin/env bash
# Builds the plugin archive that `pulumi plugin install resource mlflow-runs VERSION --file ARCHIVE` takes:
# tools/plugin/pulumi-resource-mlflow-runs (the launcher) and wheels/ (the package, built from this checkout,
# and every dependency, for this platform and Python). The last line on stdout is the archive's path.
#
# Usage: bash scripts/plugin-archive.sh [OUT_DIR]   (default: dist/)
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
version=$(python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
platform=$(python -c 'import platform; print(platform.system().lower() + "-" + {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()))')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
python -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$stage/wheels" . >&2
install -m 0755 tools/plugin/pulumi-resource-mlflow-runs "$stage/"
archive="$out/pulumi-resource-mlflow-runs-v$version-$platform.tar.gz"
tar -czf "$archive" -C "$stage" .
echo "plugin-archive: $(du -h "$archive" | cut -f1) with $(ls "$stage/wheels" | wc -l) wheels" >&2
echo "$archive"
