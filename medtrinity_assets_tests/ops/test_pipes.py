"""The optional out-of-process path: deploy/pipes/gpu_inference_pipes.py speaks Dagster Pipes (here under
the subprocess client; on Kubernetes the same script runs under PipesK8sClient in a CUDA image)."""

import sys

from dagster import AssetExecutionContext, DagsterInstance, PipesSubprocessClient, asset, materialize

from medtrinity_assets_tests.support.ops import REPO, write_tiny_sources


def test_pipes_script_reports_back_to_the_orchestrating_step(tmp_path):
    cfg = write_tiny_sources(tmp_path, n_sources=1, images_per_source=1)

    @asset
    def pipes_probe(context: AssetExecutionContext, pipes_subprocess_client: PipesSubprocessClient):
        return pipes_subprocess_client.run(
            context=context, command=[sys.executable, str(REPO / "deploy" / "pipes" / "gpu_inference_pipes.py")],
            extras={"partition": "s00|tiny_0", "config": str(cfg)}, cwd=str(REPO),
        ).get_materialize_result()

    with DagsterInstance.ephemeral() as instance:
        result = materialize([pipes_probe], resources={"pipes_subprocess_client": PipesSubprocessClient()},
                             instance=instance)
        assert result.success
        meta = result.asset_materializations_for_node("pipes_probe")[0].metadata
    assert meta["source"].value == "tiny_0" and meta["shard"].value == "s00"
    assert meta["data_root"].value == str(tmp_path / "out")
