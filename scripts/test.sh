#!/usr/bin/env bash
# The whole check: lint, types, and the test suite (which starts its own MLflow server on loopback).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
ruff check provider tests examples benchmarks scripts
ruff format --check provider
mypy
pytest "$@"
