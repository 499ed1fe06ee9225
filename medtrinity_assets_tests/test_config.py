"""The sources YAML as typed models: a valid file resolves paths against itself; a malformed one gets
one line that names the file, the entry and the field; the files it names are checked at load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medtrinity_assets.config import ConfigError, PipelineConfig, load_config, read_config
from medtrinity_assets.config.fields import cron_problem
from medtrinity_assets.roi.facts import Thresholds

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
    schedule: "30 2 * * mon-fri"
    options: {max_voxels: 1000, display: radiological}
  - name: photos
    format: image_folder
    path: /abs/photos
    roi: none
knowledge:
  top_k: 3
  corpora:
    - name: core
      format: core
      path: knowledge
rois: {min_component_pixels: 5, thresholds: {size_mm: [5, 10, 40]}, label_kinds: {Liver: anatomy}}
generator: {backend: openai_compat, model: llava, base_url: "http://127.0.0.1:8000/v1", temperature: 0}
quality: {leakage_hamming: 6}
"""

ONE_SOURCE = "sources:\n  - {name: ct, format: nifti, path: images}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_valid_registry_resolves_relative_to_the_file(tmp_path):
    cfg = read_config(_write(tmp_path, GOOD))
    assert isinstance(cfg, PipelineConfig) and cfg.config_path == (tmp_path / "sources.yaml").resolve()
    assert cfg.data_root == (tmp_path / "out").resolve()
    assert cfg.shards == 3 and cfg.salt == "s3cret"
    one, photos = cfg.sources
    assert one.path == (tmp_path / "images").resolve() and one.labels == (tmp_path / "labels").resolve()
    assert one.labels_csv == (tmp_path / "labels.csv").resolve()
    assert one.label_names == {1: "tumour", 2: "cyst"} and one.schedule == "30 2 * * mon-fri"
    assert one.licence == "CC-BY-4.0" and one.options.max_voxels == 1000
    assert one.options.display == "radiological" and one.options.max_pixels is None  # None: the reader's default applies
    assert (one.options.pixel_phi, one.options.text_phi, one.options.extra_fields) == ("redact", "redact", ())  # the model's
    assert photos.path == Path("/abs/photos") and photos.roi == "none" and photos.licence == "unknown"
    assert cfg.source("photos") is photos
    assert cfg.corpus("core").path == (tmp_path / "knowledge").resolve()
    # typed sections, with the defaults of what the file leaves out
    assert cfg.knowledge.top_k == 3 and cfg.knowledge.chunk_tokens == 192
    assert cfg.rois.min_component_pixels == 5 and cfg.rois.label_kinds == {"liver": "anatomy"}
    assert isinstance(cfg.rois.thresholds, Thresholds) and cfg.rois.thresholds.size_mm == (5.0, 10.0, 40.0)
    assert cfg.rois.thresholds.ct_contrast_hu == Thresholds().ct_contrast_hu
    assert cfg.generator.backend == "openai" and cfg.generator.temperature == 0.0 and cfg.generator.concurrency is None
    assert cfg.quality.leakage_hamming == 6 and cfg.quality.dedup_hamming == 4
    assert cfg.ingest.workers is None
    # what the file set, nothing else (what a change of configuration is measured on)
    assert cfg.quality.explicit() == {"leakage_hamming": 6} and cfg.exports.explicit() == {}
    with pytest.raises(KeyError, match="known"):
        cfg.source("absent")


def test_omitted_knowledge_section_means_the_bundled_core_corpus(tmp_path):
    cfg = read_config(_write(tmp_path, ONE_SOURCE))
    (core,) = cfg.corpora
    assert core.name == "core" and core.format == "core"
    assert core.path == REPO / "data" / "knowledge" and any(core.path.glob("*.yaml"))
    # knobs without corpora keep the bundled corpus too
    cfg = read_config(_write(tmp_path, ONE_SOURCE + "knowledge: {top_k: 2}\n"))
    assert [c.name for c in cfg.corpora] == ["core"] and cfg.knowledge.top_k == 2


def test_repository_demo_registry_loads():
    cfg = read_config(REPO / "data" / "sources.yaml")  # the demo folders exist only after `medtrinity demo`
    assert {s.format for s in cfg.sources} >= {"nifti", "msd", "image_folder", "coco", "captions"}
    assert cfg.models == REPO / "data" / "models.yaml"


def test_configuration_is_immutable(tmp_path):
    cfg = read_config(_write(tmp_path, ONE_SOURCE))
    with pytest.raises(Exception, match="frozen"):
        cfg.shards = 9


def _entry(**fields) -> str:
    lines = ["sources:", "  - name: good_one", "    format: nifti", "    path: a", "  -"]
    for key, value in fields.items():
        lines.append(f"    {key}: {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text, must_mention",
    [
        (_entry(name="Bad-Name", format="nifti", path="x"), ["sources[1] field 'name'", "Bad-Name"]),
        (_entry(name="s2", format="jpeg", path="x"),
         ["source 's2' field 'format': 'jpeg' is not one of dicom, nifti, msd"]),
        (_entry(name="s2", format="nifti"), ["source 's2' field 'path': missing"]),
        (_entry(name="s2", format="nifti", path="''"), ["source 's2' field 'path'"]),
        (_entry(name="s2", format="nifti", path="x", roi="maybe"), ["source 's2' field 'roi'", "maybe"]),
        (_entry(name="s2", format="nifti", path="x", label_names="{one: tumour}"),
         ["source 's2' field 'label_names'", "one"]),
        (_entry(name="s2", format="nifti", path="x", label_names="[tumour]"), ["source 's2' field 'label_names'"]),
        (_entry(name="s2", format="nifti", path="x", pathh="y"),
         ["source 's2'", "unknown field 'pathh' (did you mean 'path'?)"]),
        (_entry(name="s2", format="nifti", path="x", options="[1, 2]"), ["source 's2' field 'options'"]),
        (_entry(name="s2", format="nifti", path="x", options="{display: sideways}"),
         ["source 's2' field 'options.display'", "sideways", "radiological"]),
        (_entry(name="s2", format="nifti", path="x", options="{max_pixel: 5}"),
         ["source 's2' field 'options'", "'max_pixel' (did you mean 'max_pixels'?)"]),
        (_entry(name="s2", format="nifti", path="x", options="{max_voxels: -1}"),
         ["source 's2' field 'options.max_voxels'", "-1"]),
        (_entry(name="s2", format="nifti", path="x", options="{pixel_spacing: [0.5]}"),
         ["source 's2' field 'options.pixel_spacing"]),
        (_entry(name="s2", format="nifti", path="x", modality="[CT, MR]"), ["source 's2' field 'modality'"]),
        (_entry(name="s2", format="nifti", path="x", schedule="'0 25 * * *'"),
         ["source 's2' field 'schedule'", "hour '25'"]),
        (_entry(name="s2", format="nifti", path="x", schedule="daily"), ["source 's2' field 'schedule'", "5 fields"]),
        (_entry(name="good_one", format="nifti", path="x"), ["field 'sources'", "duplicate", "good_one"]),
    ],
)
def test_malformed_entry_names_entry_and_field(tmp_path, text, must_mention):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        read_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for part in must_mention:
        assert part in message, (part, message)


def test_entry_that_is_not_a_mapping(tmp_path):
    path = _write(tmp_path, "sources:\n  - just a string\n")
    with pytest.raises(ConfigError, match=r"sources\[0\].*mapping"):
        read_config(path)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("sources: {name: x}\n", "'sources'.*list"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("sources: [\n", "not valid YAML"),
        ("source:\n  - {name: ct, format: nifti, path: a}\n",
         "unknown top-level key 'source' \\(did you mean 'sources'\\?\\)"),
        ("data_root: out\n", "field 'sources': missing"),
        ("sources: []\n", "field 'sources': empty"),
        ("sources:\n", "field 'sources': empty"),
        ("shards: 0\n" + ONE_SOURCE, "field 'shards': expected an integer >= 1, got 0"),
        ("shards: two\n" + ONE_SOURCE, "field 'shards'"),
        ("shards: true\n" + ONE_SOURCE, "field 'shards'.*True"),
        ("max_side: 8\n" + ONE_SOURCE, "'max_side'.*>= 16"),
        ("salt: 42\n" + ONE_SOURCE, "field 'salt'"),
        ("knowledge: {corpora: [{name: c, format: pdf, path: x}]}\n" + ONE_SOURCE, "corpus 'c' field 'format'.*pdf"),
        ("knowledge: {corpora: [{name: c}]}\n" + ONE_SOURCE, "corpus 'c' field 'path'"),
        ("knowledge: [1]\n" + ONE_SOURCE, "field 'knowledge'.*mapping"),
        ("knowledge: {corpora: []}\n" + ONE_SOURCE, "field 'knowledge.corpora': empty"),
        ("knowledge: {overlap: 500}\n" + ONE_SOURCE, "field 'knowledge'.*overlap 500"),
        ("knowledge: {top_k: 0}\n" + ONE_SOURCE, "field 'knowledge.top_k'"),
        ("knowledge: {approximate: lsh}\n" + ONE_SOURCE, "field 'knowledge.approximate': 'lsh' is not one of hnsw, ivf"),
        ("knowledge: {chunk_size: 9}\n" + ONE_SOURCE, "field 'knowledge': unknown field 'chunk_size'"),
        ("generator: {backend: grounde}\n" + ONE_SOURCE,
         "field 'generator.backend': 'grounde' is not one of grounded, openai, transformers"),
        ("generator: {backend: openai}\n" + ONE_SOURCE, "field 'generator': backend 'openai' needs model and base_url"),
        ("generator: {backend: transformers}\n" + ONE_SOURCE, "field 'generator': .*needs model_dir"),
        ("generator: {prompt: description_v9}\n" + ONE_SOURCE, "field 'generator.prompt'.*known: description_v1"),
        ("generator: {temprature: 0.1}\n" + ONE_SOURCE, "did you mean 'temperature'"),
        ("generator: {concurrency: 0}\n" + ONE_SOURCE, "field 'generator.concurrency'"),
        ("generator: {response_format: xml}\n" + ONE_SOURCE, "field 'generator.response_format'"),
        ("rois: {thresholds: {ct_contrast: 5}}\n" + ONE_SOURCE, "field 'rois.thresholds'.*did you mean 'ct_contrast_hu'"),
        ("rois: {label_kinds: {liver: organ}}\n" + ONE_SOURCE, "field 'rois.label_kinds.liver'.*anatomy, finding"),
        ("rois: {lesion_model: {stepz: 3}}\n" + ONE_SOURCE, "field 'rois.lesion_model'.*'steps'"),
        ("ingest: {workers: many}\n" + ONE_SOURCE, "field 'ingest.workers'"),
        ("quality: {max_contradiction_rate: -1}\n" + ONE_SOURCE, "field 'quality.max_contradiction_rate'"),
        ("quality: {dedup_haming: 3}\n" + ONE_SOURCE, "did you mean 'dedup_hamming'"),
        ("exports: {anything: 1}\n" + ONE_SOURCE, "field 'exports': unknown field 'anything'"),
    ],
)
def test_malformed_top_level(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern) as err:
        read_config(_write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_sections_left_empty_take_their_defaults(tmp_path):
    cfg = read_config(_write(tmp_path, ONE_SOURCE + "generator:\nquality:\n"))
    assert cfg.generator.backend == "grounded" and cfg.quality.max_contradiction_rate == 0.05


def test_lesion_model_index_range_shorthand(tmp_path):
    cfg = read_config(_write(tmp_path, ONE_SOURCE + "rois: {lesion_model: {steps: 10, train_indices: {start: 0, stop: 2}}}\n"))
    assert cfg.rois.lesion_model.train_indices == (0, 1) and cfg.rois.lesion_model.steps == 10


def test_salt_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRINITY_SALT", "from-env")
    assert read_config(_write(tmp_path, ONE_SOURCE)).salt == "from-env"
    assert read_config(_write(tmp_path, "salt: mine\n" + ONE_SOURCE)).salt == "mine"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


@pytest.mark.parametrize("cron", ["0 3 * * 0", "*/15 * * * *", "0 0 1,15 * *", "30 2 * jan-mar mon-fri", "@daily"])
def test_cron_strings_dagster_accepts_are_accepted(cron):
    from dagster import ScheduleDefinition, define_asset_job

    assert cron_problem(cron) is None
    ScheduleDefinition(name="s", cron_schedule=cron, job=define_asset_job("j"))  # Dagster agrees


@pytest.mark.parametrize("cron", ["0 3 * *", "61 * * * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * funday", "*/0 * * * *"])
def test_cron_strings_dagster_refuses_are_refused(cron):
    from dagster import DagsterInvalidDefinitionError, ScheduleDefinition, define_asset_job

    assert cron_problem(cron)
    with pytest.raises(DagsterInvalidDefinitionError):
        ScheduleDefinition(name="s", cron_schedule=cron, job=define_asset_job("j"))


# --- what the file points at --------------------------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    return tmp_path


def test_files_are_checked_at_load(tmp_path):
    _tree(tmp_path)
    path = _write(tmp_path, ONE_SOURCE)
    assert load_config(path).sources[0].path.is_dir()

    def fails(text: str, *parts: str) -> None:
        with pytest.raises(ConfigError) as err:
            load_config(_write(tmp_path, text))
        message = str(err.value)
        assert message.startswith(str(tmp_path / "sources.yaml")) and "\n" not in message
        for part in parts:
            assert part in message, (part, message)

    fails("sources:\n  - {name: ct, format: nifti, path: nowhere}\n", "source 'ct' field 'path'", "does not exist")
    (tmp_path / "one.nii").write_bytes(b"x")
    fails("sources:\n  - {name: ct, format: nifti, path: one.nii}\n", "source 'ct' field 'path'", "is a file")
    fails("sources:\n  - {name: ct, format: nifti, path: images, labels: nolabels}\n", "field 'labels'")
    fails("sources:\n  - {name: ct, format: nifti, path: images, labels_csv: no.csv}\n", "field 'labels_csv'")
    fails("sources:\n  - {name: ct, format: nifti, path: images, roi: expert,\n"
          "     expert_masks: {name: ts, version: '1', path: masks, labels: totalsegmentator}}\n",
          "source 'ct' field 'expert_masks.path'")
    (tmp_path / "masks").mkdir()
    fails("sources:\n  - {name: ct, format: nifti, path: images, roi: expert,\n"
          "     expert_masks: {name: ts, version: '1', path: masks, labels: labels.json}}\n",
          "source 'ct' field 'expert_masks.labels'", "labels.json does not exist")
    (tmp_path / "labels.json").write_text('{"1": "liver"}')
    for labels, read in (("labels.json", tmp_path / "labels.json"), ("TotalSegmentator", "totalsegmentator"),
                         ("{1: liver}", {1: "liver"})):  # the word is not a file name beside the YAML
        cfg = load_config(_write(tmp_path, "sources:\n  - {name: ct, format: nifti, path: images, roi: expert,\n"
                                           f"     expert_masks: {{name: ts, version: '1', path: masks, labels: {labels}}}}}\n"))
        assert cfg.sources[0].expert_masks.labels == read
    fails("models: nomodels.yaml\n" + ONE_SOURCE, "field 'models'", "does not exist")
    fails("eval_hashes: nohashes.txt\n" + ONE_SOURCE, "field 'eval_hashes'")
    fails("knowledge: {corpora: [{name: pub, path: medrag.jsonl}]}\n" + ONE_SOURCE, "corpus 'pub' field 'path'")
    fails("knowledge: {encoder: models/none}\n" + ONE_SOURCE, "field 'knowledge.encoder'")
    fails("quality: {phi_identifiers_file: ids.txt}\n" + ONE_SOURCE, "field 'quality.phi_identifiers_file'")
    fails("generator: {backend: transformers, model_dir: vlm}\n" + ONE_SOURCE, "field 'generator.model_dir'")
    fails("allow_links_into: [/no/such/store]\n" + ONE_SOURCE, "field 'allow_links_into'")
    fails("rois: {lesion_model: {data: 'medtrinity_assets.demo.phantom:no_such_volumes'}}\n" + ONE_SOURCE,
          "field 'rois.lesion_model.data'", "cannot import")
    fails("rois: {lesion_model: {data: volumes}}\n" + ONE_SOURCE, "field 'rois.lesion_model.data'", "package.module:function")
    assert load_config(_write(tmp_path, "rois: {lesion_model: {data: 'medtrinity_assets.demo.phantom:lesion_training_volume'}}\n"
                                        + ONE_SOURCE)).rois.lesion_model.data


def test_data_root_that_is_a_file_or_inside_a_source_is_refused(tmp_path):
    _tree(tmp_path)
    (tmp_path / "out.txt").write_text("not a folder")
    with pytest.raises(ConfigError, match="field 'data_root': .*out.txt is a file"):
        load_config(_write(tmp_path, "data_root: out.txt\n" + ONE_SOURCE))
    for root in ("images/out", "images"):  # the second run would ingest the first run's PNGs
        with pytest.raises(ConfigError, match="field 'data_root': .*inside the folder of source 'ct'"):
            load_config(_write(tmp_path, f"data_root: {root}\n" + ONE_SOURCE))
    assert load_config(_write(tmp_path, "data_root: .\n" + ONE_SOURCE)).data_root == tmp_path.resolve()


def test_api_key_variable_must_be_set(tmp_path, monkeypatch):
    _tree(tmp_path)
    text = "generator: {backend: openai, model: m, base_url: 'http://127.0.0.1:1/v1', api_key_env: MT_TEST_KEY}\n"
    monkeypatch.delenv("MT_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"field 'generator.api_key_env': \$MT_TEST_KEY is not set"):
        load_config(_write(tmp_path, text + ONE_SOURCE))
    monkeypatch.setenv("MT_TEST_KEY", "k")
    assert load_config(_write(tmp_path, text + ONE_SOURCE)).generator.api_key_env == "MT_TEST_KEY"


def test_models_file_entries_are_checked(tmp_path):
    _tree(tmp_path)
    models = tmp_path / "models.yaml"
    path = _write(tmp_path, "models: models.yaml\n" + ONE_SOURCE)
    models.write_text((REPO / "data" / "models.yaml").read_text())
    assert load_config(path).models == models  # the lesion model's weights do not exist yet: that is fine
    for text, parts in [
        ("models:\n  - {name: seg, kind: onnx, path: m.onnx}\n", ["model 'seg' field 'kind'", "onnx", "torchscript"]),
        ("models:\n  - {name: seg, kind: torchscript}\n", ["model 'seg'", "needs 'path'"]),
        ("models:\n  - {name: seg, kind: torchscript, path: m.pt, treshold: 0.4}\n", ["did you mean 'threshold'"]),
        ("models:\n  - {name: seg, kind: torchscript, path: m.pt, sha256: 1234}\n", ["model 'seg' field 'sha256'"]),
        ("models:\n  - {name: Seg, kind: builtin}\n", ["models[0] field 'name'"]),
        ("models: {}\n", ["field 'models'"]),
        ("- a\n", ["top level must be a mapping"]),
    ]:
        models.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert str(err.value).startswith(str(models)), str(err.value)
        for part in parts:
            assert part in str(err.value), (part, str(err.value))


def test_repository_models_file_is_valid():
    from medtrinity_assets.config.models_file import ModelEntry, read_models_file
    from medtrinity_assets.roi.registry import BUILTINS

    entries = read_models_file(REPO / "data" / "models.yaml").models
    builtins = [m.builtin or m.name for m in entries if m.kind == "builtin"]  # 'builtin' defaults to the name
    assert builtins == ["ct_anatomy", "brain", "chest_xray", "field_of_view"] and set(builtins) <= set(BUILTINS)
    assert "lesion_seg" in {m.name for m in entries}
    assert set(ModelEntry.model_fields["builtin"].annotation.__args__[0].__args__) == {"ct_anatomy", "chest_xray", "brain",
                                                                                        "field_of_view"}


def test_links_allow_list_is_given_to_every_source(tmp_path):
    _tree(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    cfg = load_config(_write(tmp_path, "allow_links_into: [store]\nsources:\n"
                                       "  - {name: ct, format: nifti, path: images, allow_links_into: [images]}\n"))
    assert cfg.sources[0].allow_links_into == ((tmp_path / "images").resolve(), store.resolve())


def test_relative_paths_follow_the_yaml_not_the_working_directory(tmp_path, monkeypatch):
    _tree(tmp_path)
    path = _write(tmp_path, ONE_SOURCE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(os.path.relpath(path, elsewhere))
    assert cfg.sources[0].path == (tmp_path / "images").resolve()
