#!/usr/bin/env bash
# The whole check: lint, types, and the test suite (which starts its own MLflow server on loopback).
#   bash scripts/test.sh           everything (the tests marked cli need the Pulumi CLI: scripts/pulumi-cli.sh)
#   bash scripts/test.sh --fast    lint, types, and the tests marked neither cli nor slow: seconds to a minute
#                                  or two, what to run on every edit (a real MLflow server, no CLI, no language host)
# Any other arguments go to pytest (-n 2 for two workers, -m, -k, a path...).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
fast=()
if [ "${1:-}" = "--fast" ]; then
  shift
  fast=(-m "not cli and not slow" -n 2 --dist loadfile)  # a file on one worker: its host or server starts once
fi
ruff check provider tests examples benchmarks scripts
ruff format --check provider
mypy
pytest "${fast[@]}" "$@"
