"""Placeholder: filled by the rois stage."""
