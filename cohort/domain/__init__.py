"""Domain layer: records, model format and errors. No HTTP here."""
