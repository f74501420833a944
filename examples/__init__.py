"""Example subscriber handlers named by the example topology.yaml."""
