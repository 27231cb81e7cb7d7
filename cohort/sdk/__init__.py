"""Python SDK for scientists and app developers."""

from cohort.sdk.client import CohortClient, CohortError, sign_in

__all__ = ["CohortClient", "CohortError", "sign_in"]
