"""Operator tooling: read-only views of a running MSM deployment (consumer lag, ...)."""
