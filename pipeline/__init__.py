"""MSM: publish an event, and every subscriber's function runs once, on time, at a pace it can take."""

__version__ = "0.1.0"
