"""The package's one version, as installed (``pyproject.toml`` holds it): the wheel, the plugin's
``GetPluginInfo`` and the schema all report this."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("pulumi-mlflow-runs")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0.0.0"
