"""The local platform: every Cohort service on one machine, on an embedded AWS emulator."""
