"""Placeholder: filled by the knowledge stage."""
