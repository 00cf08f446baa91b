#!/usr/bin/env bash
# Builds the plugin archives the engine fetches from the release host (the schema's pluginDownloadURL) and
# `pulumi plugin install resource mlflow-runs VERSION --file ARCHIVE` takes: one per platform, named as the
# engine asks (pulumi-resource-mlflow-runs-vVERSION-OS-ARCH.tar.gz). Each holds the launcher
# (tools/plugin/pulumi-resource-mlflow-runs), `pythons` (the Python versions it carries wheels for) and
# wheels/: the package built from this checkout with its object-stores extra (a plugin fetched by the engine has
# no pip step where a user could add it), pip's own wheel, and every dependency as pip resolves it for
# that platform and each Python of PYTHONS (pure wheels once, binary ones per Python). The launcher makes
# the plugin's virtualenv from them on first start, with no index: the user's machine needs only a python3
# of one of those versions.
#
# Usage: bash scripts/plugin-archive.sh [OUT_DIR [PLATFORM ...]]
#   OUT_DIR defaults to dist/; PLATFORM is linux-amd64, linux-arm64, darwin-amd64 or darwin-arm64 (all four
#   by default, as the release workflow builds them). Stdout: one archive path per line, in that order.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
say() { printf 'plugin-archive: %s\n' "$*" >&2; }
PACKAGE="pulumi-mlflow-runs[object-stores]" # what the launcher installs (tools/plugin/pulumi-resource-mlflow-runs)
# Every CPython the package supports (requires-python >=3.11) that its binary dependencies ship wheels for.
PYTHONS="3.11 3.12 3.13 3.14 3.15"
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
shift $(($# > 0 ? 1 : 0))
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux-amd64 linux-arm64 darwin-amd64 darwin-arm64)

tags() { # pip's --platform tags of a platform: glibc 2.17+ Linux (manylinux; obstore's arm64 wheel 2.24+), macOS 11+
  case "$1" in
    linux-amd64) echo "--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64" ;;
    linux-arm64) echo "--platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_24_aarch64 --platform manylinux_2_28_aarch64" ;;
    darwin-amd64) echo "--platform macosx_11_0_x86_64" ;;
    darwin-arm64) echo "--platform macosx_11_0_arm64" ;;
    *) say "unknown platform '$1' (linux-amd64, linux-arm64, darwin-amd64, darwin-arm64)"; exit 2 ;;
  esac
}
for platform in "${platforms[@]}"; do tags "$platform" >/dev/null; done

version=$(python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
started=$SECONDS
pip() { python -m pip --disable-pip-version-check --quiet "$@" >&2; }
pip wheel --no-deps --wheel-dir "$stage/own" .
pip download --no-deps --dest "$stage/own" pip # the launcher installs with it: no ensurepip needed

fetch() { # fetch PLATFORM PYTHON DEST [pip download args]: wheels for that machine, binary only
  local platform=$1 py=$2 dest=$3
  shift 3
  # shellcheck disable=SC2046 # the tags are words
  pip download --only-binary=:all: $(tags "$platform") --python-version "$py" --implementation cp \
    --find-links "$stage/own" --dest "$dest" "$@"
}
# Resolved once, for the first platform and Python: the pure wheels serve every machine; the binary ones
# (those not tagged none-any) are fetched again, the same versions, for each platform and Python. Each
# combination is then installed as the launcher installs it (dry run, no index): what one lacks fails here.
read -r -a pythons <<<"$PYTHONS"
fetch "${platforms[0]}" "${pythons[0]}" "$stage/base" "$PACKAGE"
binary=$(find "$stage/base" -name '*.whl' ! -name '*-none-any.whl' -printf '%f\n' | awk -F- '{print $1 "==" $2}')
export -f fetch tags say pip
export stage binary PACKAGE
for platform in "${platforms[@]}"; do
  for py in $PYTHONS; do echo "$platform $py"; done
done | xargs -P 4 -L 1 bash -c '
  # shellcheck disable=SC2086 # the pins are words
  fetch "$0" "$1" "$stage/$0/py$1" --no-deps $binary'

for platform in "${platforms[@]}"; do
  wheels="$stage/archive-$platform/wheels"
  mkdir -p "$wheels"
  for wheel in "$stage/own"/*.whl "$stage/base"/*-none-any.whl "$stage/$platform"/py*/*.whl; do
    [ -e "$wheels/${wheel##*/}" ] || cp "$wheel" "$wheels/" # an abi3 wheel once, not once per Python
  done
done
installs() { # installs PLATFORM PYTHON: the archive's wheels install there as the launcher installs them
  # shellcheck disable=SC2046 # the tags are words
  pip install --dry-run --ignore-installed --no-index --find-links "$stage/archive-$1/wheels" --only-binary=:all: \
    $(tags "$1") --python-version "$2" --implementation cp --target "$stage/dry-run-$1-$2" "$PACKAGE" ||
    { say "$1, Python $2: the archive's wheels do not install"; exit 1; }
}
export -f installs
for platform in "${platforms[@]}"; do
  for py in $PYTHONS; do echo "$platform $py"; done
done | xargs -P 4 -L 1 bash -c 'installs "$0" "$1"'

for platform in "${platforms[@]}"; do
  root="$stage/archive-$platform"
  install -m 0755 tools/plugin/pulumi-resource-mlflow-runs "$root/"
  echo "$PYTHONS" >"$root/pythons"
  archive="$out/pulumi-resource-mlflow-runs-v$version-$platform.tar.gz"
  tar -cf - -C "$root" . | gzip -1 >"$archive" # wheels are compressed already: the fastest level
  say "$(basename "$archive"): $(du -h "$archive" | cut -f1), $(find "$root/wheels" -name '*.whl' | wc -l) wheels for Python $PYTHONS"
  echo "$archive"
done
say "built in $((SECONDS - started)) s"
