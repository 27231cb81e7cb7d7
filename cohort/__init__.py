"""Cohort: federated learning and robustness evaluation on your own AWS account."""
