"""The dynamic-provider front door: what a Python program gets with nothing to install.

The resources (``experiment_run``, ``experiment``) pickle their providers into state and run them in the
SDK's provider host (``python -m pulumi.dynamic``); ``provider_base``, ``host_errors``, ``host_pool`` and
``elided_assets`` adapt that host; ``functions`` are the lookups a program calls.
"""
