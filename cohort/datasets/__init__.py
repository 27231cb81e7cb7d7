"""Data: dataset schemas and their generated sample datasets; digits shards for simulated devices."""
