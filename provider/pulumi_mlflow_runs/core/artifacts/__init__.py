"""Run artifacts: the declared files (``files``), the stores of a run's root (``stores``, ``databricks``)
and sending them there (``sync``)."""
