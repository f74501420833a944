"""MSM: publish an event; every subscriber's function runs once, on time, at its pace."""

from pipeline.handler import DeadLetter, Retry, TaskMeta

__all__ = ["DeadLetter", "Retry", "TaskMeta"]
__version__ = "0.1.0"
