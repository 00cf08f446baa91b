"""Test support: a real MLflow server and a driver for the real Pulumi dynamic provider host."""
