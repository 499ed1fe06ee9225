"""The source registry: a valid file resolves paths against itself; a malformed one gets an error
that names the file, the entry and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtrinity_assets.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
data_root: out
shards: 3
salt: s3cret
sources:
  - name: ct_one
    format: nifti
    path: images
    labels: labels
    labels_csv: labels.csv
    label_names: {1: tumour, "2": cyst}
    modality: CT
    organ: liver
    roi: ground_truth
    license: CC-BY-4.0
    options: {max_voxels: 1000}
  - name: photos
    format: image_folder
    path: /abs/photos
    roi: none
knowledge:
  corpora:
    - name: core
      format: core
      path: knowledge
rois: {min_area: 5}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_valid_registry_resolves_relative_to_the_file(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.data_root == (tmp_path / "out").resolve()
    assert cfg.shards == 3 and cfg.salt == "s3cret"
    one, photos = cfg.sources
    assert one.path == (tmp_path / "images").resolve() and one.labels == (tmp_path / "labels").resolve()
    assert one.labels_csv == (tmp_path / "labels.csv").resolve()
    assert one.label_names == {1: "tumour", 2: "cyst"}
    assert one.licence == "CC-BY-4.0" and one.option("max_voxels") == 1000 and one.option("nope", 7) == 7
    assert photos.path == Path("/abs/photos") and photos.roi == "none" and photos.licence == "unknown"
    assert cfg.source("photos") is photos
    assert cfg.corpus("core").path == (tmp_path / "knowledge").resolve()
    assert cfg.section("rois") == {"min_area": 5} and cfg.section("generator") == {}
    with pytest.raises(KeyError, match="known"):
        cfg.source("absent")


def test_repository_demo_registry_loads():
    cfg = load_config(REPO / "data" / "sources.yaml")
    assert {s.format for s in cfg.sources} >= {"nifti", "msd", "image_folder", "coco", "captions"}


def _entry(**fields) -> str:
    lines = ["sources:", "  - name: good_one", "    format: nifti", "    path: a", "  -"]
    for key, value in fields.items():
        lines.append(f"    {key}: {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, must_mention",
    [
        (_entry(name="Bad-Name", format="nifti", path="x"), ["sources[1]", "'name'", "Bad-Name"]),
        (_entry(name="s2", format="jpeg", path="x"), ["source 's2'", "'format'", "jpeg", "nifti"]),
        (_entry(name="s2", format="nifti"), ["source 's2'", "'path'", "missing"]),
        (_entry(name="s2", format="nifti", path="''"), ["source 's2'", "'path'"]),
        (_entry(name="s2", format="nifti", path="x", roi="maybe"), ["source 's2'", "'roi'", "maybe"]),
        (_entry(name="s2", format="nifti", path="x", label_names="{one: tumour}"),
         ["source 's2'", "'label_names'", "one"]),
        (_entry(name="s2", format="nifti", path="x", label_names="[tumour]"), ["source 's2'", "'label_names'"]),
        (_entry(name="s2", format="nifti", path="x", pathh="y"), ["source 's2'", "pathh", "unknown"]),
        (_entry(name="s2", format="nifti", path="x", options="[1, 2]"), ["source 's2'", "'options'"]),
        (_entry(name="s2", format="nifti", path="x", modality="[CT, MR]"), ["source 's2'", "'modality'"]),
        (_entry(name="good_one", format="nifti", path="x"), ["duplicate", "good_one"]),
    ],
)
def test_malformed_entry_names_entry_and_field(tmp_path, text, must_mention):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for part in must_mention:
        assert part in message, (part, message)


def test_entry_that_is_not_a_mapping(tmp_path):
    path = _write(tmp_path, "sources:\n  - just a string\n")
    with pytest.raises(ConfigError, match=r"sources\[0\].*mapping"):
        load_config(path)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("sources: {name: x}\n", "'sources'.*list"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("sources: [\n", "not valid YAML"),
        ("shards: 0\nsources: []\n", "'shards'.*integer >= 1"),
        ("shards: two\nsources: []\n", "'shards'"),
        ("max_side: 8\nsources: []\n", "'max_side'.*>= 16"),
        ("salt: 42\nsources: []\n", "'salt'"),
        ("knowledge: {corpora: [{name: c, format: pdf, path: x}]}\n", "corpus 'c' field 'format'.*pdf"),
        ("knowledge: {corpora: [{name: c}]}\n", "corpus 'c' field 'path'"),
        ("knowledge: [1]\n", "'knowledge'.*mapping"),
    ],
)
def test_malformed_top_level(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
