"""Placeholder: filled by the exports stage."""
