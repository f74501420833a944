"""The chaos suite (issue 6): faults injected under load, every event accounted for.

A generator publishes events with per-key sequence numbers and keeps the ones Kafka
acknowledged; a handler records every execution on disk before it returns; a pure checker
compares the two and counts, per subscriber, what was lost, duplicated, reordered or early.
``python -m chaos`` runs the scenarios and writes a markdown report.
"""
