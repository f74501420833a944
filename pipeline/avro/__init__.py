"""Avro for MSM: schema files and their versions (``schemas``), backward compatibility
(``compatibility``) and, later, the wire format.

Payloads are Avro so that they are validated once at ingress and decoded with the writer's own
schema version; nothing here is imported at package import time.
"""
