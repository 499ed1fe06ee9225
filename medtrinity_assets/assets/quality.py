"""Placeholder: filled by the quality stage."""
