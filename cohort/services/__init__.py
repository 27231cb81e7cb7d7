"""Service layer: the orchestrator's use cases, authentication and launchers."""
