#!/usr/bin/env bash
# Makes sure the Python, YAML and Node.js language hosts sit beside the Pulumi CLI: `pulumi up` in a folder with
# a Pulumi.yaml (runtime: python, yaml or nodejs) needs them, inline Automation API programs do not.
#
# Usage: language-host.sh BIN_DIR   (the folder that holds `pulumi`; scripts/pulumi-cli.sh calls this)
#
# Order: `pulumi-language-python` in BIN_DIR or on PATH (the CLI's release archive ships it); else a build from
# the Go module pinned in tools/language-host/go.mod into BIN_DIR, with the `pulumi-language-python-exec` of
# the CLI's own sdk version beside it (the host runs that script to start the program, so the program side
# is the CLI's). The YAML host: `pulumi-language-yaml` in BIN_DIR or on PATH, else `go install` of the
# pulumi-yaml version pinned below, with the module versions its own go.mod pins. Progress goes to
# stderr, one line as each build starts and one as it ends (with its time); the Go toolchain's own output
# goes to a log under .pulumi-local/logs that the start line names, and on a failure its last lines are
# printed with its path. The last line on stdout is BIN_DIR.
#
# What this host is: the module proxy serves the host only up to sdk/v3 v3.68.0 (it has since moved to a
# module of its own that the proxy does not serve). It is older than the CLI: it reads the runtime options
# (`virtualenv`, `toolchain`) from command-line flags that a current CLI no longer passes, so it runs the
# `python3` first on PATH, or PULUMI_PYTHON_CMD. Callers name the Python of the virtualenv that Pulumi.yaml
# names (PULUMI_PYTHON_CMD), as the current host finds it by itself; `pulumi install`, the `toolchain` option,
# uv and poetry are not exercised.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/tools/language-host"
logs="$root/.pulumi-local/logs"
say() { printf 'language-host: %s\n' "$*" >&2; }
# shown PATH, logged LOG COMMAND...: a stage with its tool output in a log file.
source "$root/scripts/stages.sh"

bin=${1:?usage: language-host.sh BIN_DIR}
bin=$(cd "$bin" && pwd)

YAML_VERSION=v1.25.0 # github.com/pulumi/pulumi-yaml: the YAML language host (runtime: yaml)

yaml_host() {
  if [ -x "$bin/pulumi-language-yaml" ]; then
    say "using $(shown "$bin/pulumi-language-yaml")"
  elif [ "${PULUMI_MLFLOW_RUNS_BUILD_CLI:-}" != "1" ] && command -v pulumi-language-yaml >/dev/null 2>&1; then
    say "using $(command -v pulumi-language-yaml) (on PATH)"
  elif ! command -v go >/dev/null 2>&1; then
    say "no pulumi-language-yaml beside $bin/pulumi or on PATH, and no Go toolchain to build one"
    exit 1
  else
    local started=$SECONDS ytmp log=$logs/language-host-yaml.log
    say "building the YAML language host (pulumi-yaml $YAML_VERSION) into $(shown "$bin")... (log: $(shown "$log"))"
    ytmp=$(mktemp -d "$bin/.yaml-host.XXXXXX")
    logged "$log" env GOFLAGS=-buildvcs=false GOBIN="$ytmp" go install -trimpath -ldflags "-s -w" \
      "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@$YAML_VERSION"
    mv "$ytmp/pulumi-language-yaml" "$bin/"
    rm -rf "$ytmp"
    say "built the YAML language host in $((SECONDS - started)) s"
  fi
}

# The Node.js host (runtime: nodejs), from the same module pin as the Python host: the program side is the
# @pulumi/pulumi the program's package.json installs (its own `cmd/run`), so only the host is old.
node_host() {
  if [ -x "$bin/pulumi-language-nodejs" ]; then
    say "using $(shown "$bin/pulumi-language-nodejs")"
  elif [ "${PULUMI_MLFLOW_RUNS_BUILD_CLI:-}" != "1" ] && command -v pulumi-language-nodejs >/dev/null 2>&1; then
    say "using $(command -v pulumi-language-nodejs) (on PATH)"
  elif ! command -v go >/dev/null 2>&1; then
    say "no pulumi-language-nodejs beside $bin/pulumi or on PATH, and no Go toolchain to build one"
    exit 1
  else
    local started=$SECONDS ntmp version log=$logs/language-host-nodejs.log
    version=$(sed -n 's#^[[:space:]]*\(require \)\{0,1\}github.com/pulumi/pulumi/sdk/v3 \(v[^ ]*\).*#\2#p' "$tools/go.mod")
    say "building the Node.js language host (sdk/v3 $version) into $(shown "$bin")... (log: $(shown "$log"))"
    ntmp=$(mktemp -d "$bin/.node-host.XXXXXX")
    build_node() {
      cd "$tools"
      GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" go build -trimpath \
        -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
        -o "$ntmp/pulumi-language-nodejs" github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs
    }
    logged "$log" build_node
    mv "$ntmp/pulumi-language-nodejs" "$bin/"
    rm -rf "$ntmp"
    say "built the Node.js language host in $((SECONDS - started)) s"
  fi
}

if [ -x "$bin/pulumi-language-python" ]; then
  say "using $(shown "$bin/pulumi-language-python")"
  yaml_host
  node_host
  echo "$bin"
  exit 0
fi
if [ "${PULUMI_MLFLOW_RUNS_BUILD_CLI:-}" != "1" ] && found=$(command -v pulumi-language-python 2>/dev/null); then
  say "using $found (on PATH)"
  yaml_host
  node_host
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  say "no pulumi-language-python beside $bin/pulumi or on PATH, and no Go toolchain to build one."
  say "Install the Pulumi CLI from its release archive (it ships the language hosts) or Go 1.26+, then run again."
  exit 1
fi
[ -w "$bin" ] || { say "$bin is not writable; cannot put the language host beside the CLI there"; exit 1; }

# The exec script of the CLI's own sdk version: `pulumi version` prints e.g. v3.274.1.
cli_version=$("$bin/pulumi" version 2>/dev/null | tr -d '[:space:]')
case "$cli_version" in v3.*) ;; *) say "cannot read the CLI's version from '$bin/pulumi version' ('$cli_version')"; exit 1 ;; esac
host_version=$(sed -n 's#^[[:space:]]*\(require \)\{0,1\}github.com/pulumi/pulumi/sdk/v3 \(v[^ ]*\).*#\2#p' "$tools/go.mod")
[ -n "$host_version" ] || { say "cannot read the pinned version from $tools/go.mod"; exit 1; }

log=$logs/language-host-python.log
say "building the Python language host (sdk/v3 $host_version) into $(shown "$bin"), with the executor of the CLI's sdk $cli_version... (log: $(shown "$log"))"
start=$SECONDS
tmp=$(mktemp -d "$bin/.language-host.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
build_python() {
  cd "$tools"
  export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$host_version" \
    -o "$tmp/pulumi-language-python" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
  # Outside any module, so the version asked for is the CLI's, not this module's pin.
  local sdk
  sdk=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/pulumi/pulumi/sdk/v3@$cli_version" |
    sed -n 's#^[[:space:]]*"Dir": "\(.*\)",*$#\1#p')
  [ -f "$sdk/python/cmd/pulumi-language-python-exec" ] || { say "no pulumi-language-python-exec in '$sdk'"; exit 1; }
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$tmp/"
}
logged "$log" build_python
# The executor first: the host is what callers test for, so it must never stand there without it.
mv "$tmp/pulumi-language-python-exec" "$bin/"
mv "$tmp/pulumi-language-python" "$bin/"
say "built the Python language host in $((SECONDS - start)) s"
yaml_host
node_host
echo "$bin"
