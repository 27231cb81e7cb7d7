"""Data: the digits set for simulated devices, and (later) sample datasets from schemas."""
