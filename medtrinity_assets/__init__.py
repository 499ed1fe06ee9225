"""MedTrinity data engine."""
