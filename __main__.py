"""The top-level project's program: examples/quickstart, run from here so that Pulumi.yaml needs no `main:`."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).parent / "examples" / "quickstart" / "__main__.py"), run_name="__main__")
