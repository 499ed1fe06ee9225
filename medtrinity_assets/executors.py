"""Where the steps of a run execute: a deployment choice read from ``MEDTRINITY_EXECUTOR``.

- unset / ``default``: Dagster's multiprocess executor (one process per step on the run's host);
- ``in_process``: every step in the run process (debugging, tiny machines);
- ``dask``: a Dask cluster, ``MEDTRINITY_DASK_ADDRESS=tcp://host:8786`` (else a local cluster per run);
- ``k8s``: one Kubernetes Job per step (needs ``dagster-k8s``; see deploy/k8s/README.md).

The assets do not change: they read and write files under ``data_root``, which every worker must
see at the same path (a shared volume or a mounted bucket).
"""

from __future__ import annotations

import os


def executor_from_env():
    """The executor named by ``MEDTRINITY_EXECUTOR`` (None: Dagster's default)."""
    kind = os.environ.get("MEDTRINITY_EXECUTOR", "").strip().lower()
    if kind in ("", "default", "multiprocess"):
        return None
    if kind == "in_process":
        from dagster import in_process_executor

        return in_process_executor
    if kind == "dask":
        from dagster_dask import dask_executor

        address = os.environ.get("MEDTRINITY_DASK_ADDRESS")
        return dask_executor.configured({"cluster": {"existing": {"address": address}}}) if address else dask_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # pip install dagster-k8s==0.29.27

        return k8s_job_executor
    raise ValueError(f"MEDTRINITY_EXECUTOR={kind!r}: use default, in_process, dask or k8s")


# Model-bound steps (lesion-model training, expert-model ROIs, a local VLM) share the `gpu` pool: the
# instance gives it one slot per GPU (`dagster instance concurrency set gpu N`; deploy/README.md).
GPU_POOL = "gpu"


def gpu_step_tags(gpus: int = 1) -> dict:
    """Op tags for a model-bound asset: on Kubernetes its step pod asks for ``gpus`` GPUs and lands on a
    GPU node; elsewhere no tags (the ``gpu`` pool alone bounds how many such steps run at once)."""
    if os.environ.get("MEDTRINITY_EXECUTOR", "").strip().lower() != "k8s":
        return {}
    return {
        "dagster-k8s/config": {
            "container_config": {"resources": {"limits": {"nvidia.com/gpu": gpus}}},
            "pod_spec_config": {
                "node_selector": {"medtrinity/node-pool": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    }
