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


def test_organ_coverage_per_modality_from_image_facts_of_exported_images(tmp_path):
    """Coverage is read from the rois stage's image_facts rows of the images that ship, never recounted."""
    from medtrinity_assets.export.dataset_card import organ_coverage
    from medtrinity_assets.storage import DataLayout, write_table
    from medtrinity_assets.tables import IMAGE_FACTS_SCHEMA

    layout = DataLayout(tmp_path)
    facts = [("ct1", "CT", "chest", ["lung"]), ("ct2", "CT", "head", []), ("cr1", "CR", "chest", ["heart", "left lung"]),
             ("gone", "CT", "abdomen", ["liver"])]  # 'gone' was not exported (a leak or a duplicate)
    rows = [{name: None for name in IMAGE_FACTS_SCHEMA.names} | {"sample_id": sid, "source": "s1", "shard": "s00",
            "modality": mod, "body_region": region, "organs": organs, "status": "ok"} for sid, mod, region, organs in facts]
    write_table(layout.table_path("image_facts", {"source": "s1", "shard": "s00"}),
                pa.Table.from_pylist(rows, schema=IMAGE_FACTS_SCHEMA))
    exported = [{"id": "ct1", "modality": "CT"}, {"id": "ct2", "modality": "CT"}, {"id": "ct3", "modality": "CT"},
                {"id": "cr1", "modality": "CR"}]  # ct3 has no facts row: counted, with neither
    cov = organ_coverage(layout, exported)
    assert cov == {"CR": {"images": 1, "with_organ": 1, "with_region": 1, "organ_coverage": 1.0, "region_coverage": 1.0},
                   "CT": {"images": 3, "with_organ": 1, "with_region": 2, "organ_coverage": 0.3333,
                          "region_coverage": 0.6667}}
    inputs = _inputs([{"name": "s1", "licence": "CC0-1.0"}])
    inputs.organ_coverage = cov
    md = card_render.render_card(inputs)
    assert "### Organ coverage by modality" in md and "| CT | 3 | 1 | 33.3% | 2 | 66.7% |" in md
    assert "### Organ coverage" not in card_render.render_card(_inputs([{"name": "s1", "licence": "CC0-1.0"}]))
