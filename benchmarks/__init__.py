"""Ratio benchmarks: each module measures the pipeline against a bare loop over the same inputs."""
