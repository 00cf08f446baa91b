#!/usr/bin/env bash
# Builds the npm package of the generated Node.js SDK (sdk/nodejs) as the registry gets it: its
# dependencies installed, TypeScript compiled by `tsc` into bin/, package.json and README beside the
# JavaScript, then `npm pack` of bin/. The build happens in a copy, so sdk/ keeps only what
# scripts/gen-sdk.sh writes.
#
#   bash scripts/sdk-nodejs.sh OUT_DIR     the last line on stdout is the .tgz, which
#                                          `npm install <it>` takes, as `npm publish <it>` would send it
# Progress goes to stderr. Needs Node.js and npm (the npm registry for @pulumi/pulumi and typescript).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:?usage: sdk-nodejs.sh OUT_DIR}" && cd "$1" && pwd)
say() { printf 'sdk-nodejs: %s\n' "$*" >&2; }
command -v npm >/dev/null || { say "npm is not on PATH: install Node.js 20 or later"; exit 1; }
started=$SECONDS
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -R "$root/sdk/nodejs/." "$build/"
rm -rf "$build/node_modules" "$build/bin"
(
  cd "$build"
  npm install --no-audit --no-fund --loglevel=error
  npx --no-install tsc
  cp package.json README.md bin/
  cd bin
  npm pack --pack-destination "$out" --loglevel=error >/dev/null
) >&2
tarball=$(ls -t "$out"/*.tgz | head -n 1)
say "packed $(basename "$tarball") in $((SECONDS - started)) s"
echo "$tarball"
