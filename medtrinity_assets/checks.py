"""Placeholder: filled later."""
