"""The card's Hub metadata: licence (one id, or `other` with the per-source table), size category, split files,
and features that `datasets` reads back as the Parquet files' own."""

import pyarrow as pa

from medtrinity_assets.export import card_render, hf_parquet


def _inputs(sources):
    st = card_render.collect_stats([{"id": "a", "split": "train", "source": "s1", "modality": "CT", "subject_key": "k",
                                     "rois": [{"label": "cyst", "origin": "ground_truth", "diameter_mm": 4.0,
                                               "area_fraction": 0.01, "kind": "finding"}]}])
    return card_render.CardInputs(
        stats=st, sources=sources, categories=[{"id": 1, "name": "cyst", "kind": "finding"}],
        hf_splits={"train": {"rows": 1, "bytes": 10, "file_bytes": 8}}, features=hf_parquet.yaml_features(),
        column_docs=hf_parquet.COLUMN_DOCS, quality={"leakage": "0 images"}, contradiction_by_source={"s1": 0.0},
        exports={}, vqa={}, limitations=["a limit"], plots={"by_modality": "plots/by_modality.png"})


def test_licences_sizes_and_front_matter():
    assert card_render.hub_licence("MIT (pydicom test data)") == "mit"
    assert card_render.hub_licence("CC0-1.0") == "cc0-1.0" and card_render.hub_licence("custom terms") == "other"
    assert card_render.size_category(999) == "n<1K" and card_render.size_category(25_000_000) == "10M<n<100M"
    mixed = [{"name": "s1", "licence": "CC0-1.0", "citation": "Doe J. A phantom (2026)"},
             {"name": "s2", "licence": "MIT (pydicom test data)"}]
    md = card_render.render_card(_inputs(mixed))
    assert md.startswith("---\npretty_name:") and "\nlicense: other\nlicense_name: per-source\n" in md
    assert "| s1 |" in md and "Doe J. A phantom (2026)" in md and "![modality](plots/by_modality.png)" in md
    assert "- split: train\n    path: data/train-*.parquet" in md and "split: test" not in md  # only splits present
    same = card_render.render_card(_inputs([{"name": "s1", "licence": "CC0-1.0"}]))
    assert "\nlicense: cc0-1.0\n" in same and "license_name" not in same


def test_yaml_features_are_the_parquet_features():
    import datasets

    declared = datasets.Features._from_yaml_list(hf_parquet.yaml_features())
    table = pa.Table.from_pylist([], schema=hf_parquet.hf_schema())
    from_file = datasets.Features.from_arrow_schema(table.schema)
    assert declared == from_file
    assert list(declared) == hf_parquet.HF_SCHEMA.names and set(hf_parquet.COLUMN_DOCS) == set(declared)
