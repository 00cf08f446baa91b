#!/usr/bin/env bash
# The object-store emulators the artifact tests start on loopback (tests/support/object_stores.py) that do not
# come with the test extra (moto's S3 server does), installed into .pulumi-local/emulators (ignored by git)
# when missing: Azurite, Azure Blob's emulator (the npm package, pinned). Idempotent; one run at a time (a
# lock), so the tests' own call waits for CI's early one (.ci/run starts it in the background). Prints the
# folder of the installed commands.
#
# GCS has none here: obstore (the provider's store library) writes through GCS's XML API, which fake-gcs-server
# 1.56.1 answers "400 invalid uploadType" and gcp-storage-emulator serves in part (no listing, delete or
# multipart); tests/artifacts/test_gcs_artifacts.py has moto's server (the test extra's) answer it instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.pulumi-local/emulators"
azurite_version=3.37.0
mkdir -p "$tools/bin"
say() { printf 'emulators: %s\n' "$*" >&2; }
exec 9>"$tools/.lock"
flock 9

if [ "$(cat "$tools/azurite.version" 2>/dev/null)" != "$azurite_version" ]; then
  command -v npm >/dev/null || { say "npm is not on PATH: install Node.js 20 or later"; exit 1; }
  started=$SECONDS
  npm install --prefix "$tools/azurite" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2
  ln -sf "$tools/azurite/node_modules/.bin/azurite-blob" "$tools/bin/azurite-blob"
  echo "$azurite_version" >"$tools/azurite.version"
  say "azurite $azurite_version installed in $((SECONDS - started)) s"
fi
echo "$tools/bin"
