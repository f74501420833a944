"""MSM: publish an event; every subscriber's function runs once, on time, at its pace."""

__version__ = "0.1.0"
