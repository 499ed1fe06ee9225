"""Demo data built offline by the project: a seeded CT phantom with known truth, and the folders
that ``data/sources.yaml`` points at (see :mod:`medtrinity_assets.demo.build`)."""
