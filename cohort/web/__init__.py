"""What every HTTP server of Cohort shares: domain errors mapped to status codes, bounded request
bodies, metrics and CORS (``http``), and the verification of callers' tokens (``auth``).

The orchestrator, the FL node and the local platform's Cognito bridge build on it; it knows none of them.
"""
