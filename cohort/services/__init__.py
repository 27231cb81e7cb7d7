"""Service layer: the orchestrator's use cases, its HTTP app and the launchers of FL nodes."""
