"""Optional: run a model-bound step out of process with Dagster Pipes (e.g. in a CUDA image on a GPU
node) while the orchestrating step stays in the light CPU image.

Orchestrating side (an asset in the code location; needs dagster-k8s for PipesK8sClient):

    from dagster import AssetExecutionContext, asset
    from dagster_k8s import PipesK8sClient

    @asset(partitions_def=source_shard_partitions, pool="gpu")
    def rois_gpu(context: AssetExecutionContext, k8s_pipes: PipesK8sClient):
        return k8s_pipes.run(
            context=context,
            image="registry.example.org/medtrinity-cuda:0.1.0",
            command=["python", "/opt/medtrinity/deploy/pipes/gpu_inference_pipes.py"],
            extras={"partition": context.partition_key, "config": "/data/config/sources.yaml"},
            base_pod_spec={"containers": [{"name": "main",
                                           "resources": {"limits": {"nvidia.com/gpu": 1}}}]},
        ).get_materialize_result()

Locally the same script runs under ``dagster.PipesSubprocessClient`` (no Kubernetes). The external
side below only needs the small ``dagster-pipes`` package: it reports logs and the materialisation
(metadata with ``input_versions``) back to the orchestrating step.
"""

from __future__ import annotations


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        partition = pipes.get_extra("partition")
        config = pipes.get_extra("config")
        pipes.log.info(f"GPU inference for {partition} with {config}")
        # Here: load the sources YAML, read images[partition], run the expert models on the GPU and
        # write the rois table exactly as medtrinity_assets.roi.build does on CPU.
        from medtrinity_assets.config import load_config
        from medtrinity_assets.partitions import split_key

        cfg = load_config(config)
        source, shard = split_key(partition)
        pipes.report_asset_materialization(metadata={
            "source": source, "shard": shard, "data_root": str(cfg.data_root),
            "input_versions": {"type": "json", "raw_value": {}},
        })


if __name__ == "__main__":
    main()
