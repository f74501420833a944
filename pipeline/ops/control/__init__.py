"""Operator gating: pause, resume and drop one subscriber's deliveries (``msm subscriber``).

The state lives in the compacted topic ``<ns>.control``, one JSON record per subscriber
(:mod:`~pipeline.ops.control.record`); the CLI writes it (:mod:`~pipeline.ops.control.store`)
and every delivery and execution worker follows it
(:mod:`pipeline.agents.delivery_control`).
"""
