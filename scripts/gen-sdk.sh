#!/usr/bin/env bash
# The SDKs of the plugin's schema: sdk/schema.json, sdk/nodejs, sdk/go/mlflowruns and sdk/python, written by the CLI's
# own code generators at the CLI's version (tools/sdk-gen says why not through `pulumi package gen-sdk`).
#
#   bash scripts/gen-sdk.sh           write them (after a change to the schema: core/definitions.py, native/schema.py)
#   bash scripts/gen-sdk.sh --check   fail, listing the files, when the committed ones differ from what the
#                                     schema gives (CI runs this)
#
# Hand-written and kept: sdk/go.mod and sdk/go.sum (the Go module), sdk/nodejs's build output and node_modules,
# sdk/python's build output. sdk/python is the `pulumi_mlflow_runs_native` package that the schema's
# language.python names, which the code `pulumi import` prints for a Python program imports: README.
# The generator is built once into .pulumi-local/sdk-gen (ignored by git); Go's build cache makes later builds
# quick. Progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'gen-sdk: %s\n' "$*" >&2; }
check=0
[ "${1:-}" = "--check" ] && check=1

python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
bin="$root/.pulumi-local/sdk-gen"
mkdir -p "$bin"
started=$SECONDS
(cd "$root/tools/sdk-gen" && GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" go build -trimpath -o "$bin/sdk-gen" .)
say "generator ready after $((SECONDS - started)) s"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$python" -m pulumi_mlflow_runs.native.schema >"$out/schema.json"
"$bin/sdk-gen" "$out/schema.json" nodejs "$out/nodejs"
"$bin/sdk-gen" "$out/schema.json" go "$out/go"
"$bin/sdk-gen" "$out/schema.json" python "$out/python"

sdk="$root/sdk"
if [ "$check" = 1 ]; then
  differs=0
  diff -q "$out/schema.json" "$sdk/schema.json" >&2 || differs=1
  for lang in nodejs go python; do
    diff -rq -x node_modules -x bin -x package-lock.json -x build -x '*.egg-info' -x __pycache__ \
      "$out/$lang" "$sdk/$lang" >&2 || differs=1
  done
  if [ "$differs" = 1 ]; then
    say "the committed SDKs are not what the schema gives: run 'bash scripts/gen-sdk.sh' and commit sdk/"
    exit 1
  fi
  say "the committed SDKs are what the schema gives"
  exit 0
fi
mkdir -p "$sdk"
cp "$out/schema.json" "$sdk/schema.json"
for lang in nodejs go python; do
  # Generated files only: what a user or a build put there (node_modules, bin, build, egg-info) stays.
  find "$sdk/$lang" -type f -not -path '*/node_modules/*' -not -path "$sdk/nodejs/bin/*" \
    -not -path "$sdk/python/build/*" -not -path '*.egg-info/*' -not -path '*/__pycache__/*' \
    -not -name package-lock.json -delete 2>/dev/null || true
  mkdir -p "$sdk/$lang"
  cp -R "$out/$lang/." "$sdk/$lang/"
done
say "wrote sdk/schema.json, sdk/nodejs, sdk/go and sdk/python"
