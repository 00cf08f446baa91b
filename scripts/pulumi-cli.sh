#!/usr/bin/env bash
# Finds the Pulumi CLI, or builds it from Go modules where it cannot be downloaded.
#
# Order: `pulumi` on PATH; ~/.pulumi/bin; the Automation API's PulumiCommand.install (where downloads
# work); a build from the Go modules pinned in tools/pulumi-cli/go.mod (where `go` is present).
# Then the Python language host beside it (scripts/language-host.sh: found, or built from Go modules), for
# `pulumi up` in a project folder. Progress goes to stderr, one line as each stage starts and one as it ends
# (with its time); the Go toolchain's own output (module downloads, compiler messages) goes to a log under
# .pulumi-local/logs that the start line names, and on a failure its last lines are printed with its path.
# The one line on stdout, the last line printed, is the folder that holds `pulumi` and the dynamic-provider
# launcher `pulumi-resource-pulumi-python`, with `pulumi-language-python` there or on PATH. Callers use that line.
#
# The build lands in .pulumi-local/cli/<version>/bin (ignored by git; the layout PulumiCommand(root=…)
# expects) and is reused afterwards; set PULUMI_MLFLOW_RUNS_CLI_DIR to put it elsewhere. The first build takes minutes (module downloads, then
# a compile on two cores); later ones come from Go's module and build caches.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/tools/pulumi-cli"
logs="$root/.pulumi-local/logs"
say() { printf 'pulumi-cli: %s\n' "$*" >&2; }
# shown PATH, logged LOG COMMAND...: a stage with its tool output in a log file.
source "$root/scripts/stages.sh"
# Every way out: the language host beside the CLI, then the folder as the last line.
found() {
  bash "$root/scripts/language-host.sh" "$1" >/dev/null
  echo "$1"
  exit 0
}

# The launcher of dynamic providers: next to `pulumi` or on PATH, or the engine cannot start this provider.
has_launcher() { [ -x "$1/pulumi-resource-pulumi-python" ] || command -v pulumi-resource-pulumi-python >/dev/null; }

if [ "${PULUMI_MLFLOW_RUNS_BUILD_CLI:-}" != "1" ]; then
  for candidate in "$(command -v pulumi 2>/dev/null || true)" "$HOME/.pulumi/bin/pulumi"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      dir=$(cd "$(dirname "$candidate")" && pwd)
      if has_launcher "$dir"; then
        say "using $candidate ($("$candidate" version 2>/dev/null || echo 'version unknown'))"
        found "$dir"
      fi
      say "$candidate has no pulumi-resource-pulumi-python beside it or on PATH; not using it"
    fi
  done
fi

version=$(sed -n 's#^[[:space:]]*github.com/pulumi/pulumi/pkg/v3 \(v[^ ]*\).*#\1#p' "$tools/go.mod")
[ -n "$version" ] || { say "cannot read the pinned version from $tools/go.mod"; exit 1; }
dest=${PULUMI_MLFLOW_RUNS_CLI_DIR:-$root/.pulumi-local/cli/$version}
bin=$dest/bin

if [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-resource-pulumi-python" ]; then
  say "using $(shown "$bin/pulumi") ($version, built earlier)"
  found "$bin"
fi

# Where downloads work, the official binaries are quicker than a build.
python=$root/.venv/bin/python
if [ "${PULUMI_MLFLOW_RUNS_BUILD_CLI:-}" != "1" ] && [ -x "$python" ]; then
  say "trying PulumiCommand.install (a download of $version)..."
  start=$SECONDS
  if "$python" - "$dest" "${version#v}" >&2 2>/dev/null <<'PY'; then
import sys
from pulumi.automation import PulumiCommand
from semver import VersionInfo
PulumiCommand.install(root=sys.argv[1], version=VersionInfo.parse(sys.argv[2]))
PY
    say "downloaded into $(shown "$bin") in $((SECONDS - start)) s"
    found "$bin"
  fi
  say "the download failed after $((SECONDS - start)) s; building from Go modules instead"
fi

if ! command -v go >/dev/null 2>&1; then
  say "no Pulumi CLI found: not on PATH, not in ~/.pulumi/bin, the download failed, and there is no Go"
  say "toolchain to build it. Install the CLI (https://www.pulumi.com/docs/install/) or Go 1.26+, then run again."
  exit 1
fi

build() {
  cd "$tools"
  export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$dest.tmp/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  # The launcher of dynamic providers ships inside the sdk/v3 module; take it from the module cache.
  local sdk
  sdk=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$dest.tmp/bin/"
}

log=$logs/pulumi-cli-build.log
say "building the Pulumi CLI $version from Go modules into $(shown "$dest")... (log: $(shown "$log"))"
say "(the first build downloads the modules and compiles for several minutes; later runs reuse it)"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/bin"
start=$SECONDS
logged "$log" build
rm -rf "$dest"
mv "$dest.tmp" "$dest"
say "built $("$bin/pulumi" version) in $((SECONDS - start)) s"
found "$bin"
