"""Federated learning: rounds, aggregation, the FL node, devices and the simulator."""
