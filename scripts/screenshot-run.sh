#!/usr/bin/env bash
# The quickstart run's page in MLflow's UI, as a person sees it: docs/images/run-page.png (scripts/screenshot_run.py).
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
exec python scripts/screenshot_run.py "$@"
