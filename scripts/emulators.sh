#!/usr/bin/env bash
# The object-store emulators the artifact tests start on loopback (tests/support/object_stores.py), installed
# into .pulumi-local/emulators (ignored by git) when missing: Azurite (Azure Blob; the npm package, pinned)
# and fake-gcs-server (GCS; built from its Go module, pinned). moto's S3 server comes with the test extra.
# Idempotent; each tool is checked by its version. CI runs it in the background while other tests run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.pulumi-local/emulators"
azurite_version=3.37.0
gcs_version=v1.56.1
mkdir -p "$tools/bin"
say() { printf 'emulators: %s\n' "$*" >&2; }

if [ "$(cat "$tools/azurite.version" 2>/dev/null)" != "$azurite_version" ]; then
  command -v npm >/dev/null || { say "npm is not on PATH: install Node.js 20 or later"; exit 1; }
  started=$SECONDS
  npm install --prefix "$tools/azurite" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2
  ln -sf "$tools/azurite/node_modules/.bin/azurite-blob" "$tools/bin/azurite-blob"
  echo "$azurite_version" >"$tools/azurite.version"
  say "azurite $azurite_version installed in $((SECONDS - started)) s"
fi

if [ "$(cat "$tools/fake-gcs-server.version" 2>/dev/null)" != "$gcs_version" ]; then
  command -v go >/dev/null || { say "go is not on PATH: install Go 1.24 or later"; exit 1; }
  started=$SECONDS
  GOBIN="$tools/bin" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "github.com/fsouza/fake-gcs-server@$gcs_version"
  echo "$gcs_version" >"$tools/fake-gcs-server.version"
  say "fake-gcs-server $gcs_version built in $((SECONDS - started)) s"
fi
echo "$tools/bin"
