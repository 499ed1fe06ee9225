"""Placeholder: filled by the triplets stage."""
