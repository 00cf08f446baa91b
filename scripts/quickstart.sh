#!/usr/bin/env bash
# Sets everything up and runs `pulumi up` on the quickstart against a local MLflow server.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
exec python scripts/quickstart.py "$@"
