"""Adversarial-robustness evaluation: attacks, metrics and the report they feed."""
