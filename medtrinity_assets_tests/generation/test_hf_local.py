"""The transformers backend with a tiny random LLaVA built offline: loading, batching and parsing run end to end."""

from __future__ import annotations

import dataclasses

import pytest

from medtrinity_assets.config.sections import GeneratorSection
from medtrinity_assets.generation.backends import make_backend
from medtrinity_assets.generation.prompt import build_request
from medtrinity_assets_tests.support.generation import build_tiny_llava, ct_liver_facts, mr_brain_facts, tiny_png


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


def test_tiny_llava_generates_in_batches_and_gibberish_is_failed(tiny_model_dir):
    backend = make_backend(GeneratorSection(backend="transformers", model_dir=str(tiny_model_dir), device="cpu",
                                            batch_size=2, max_new_tokens=12))
    assert backend.name == "transformers" and "llava" in backend.model
    reqs = []
    for i in range(3):  # 3 requests, batch size 2: one full batch and one partial, different image sizes
        f = ct_liver_facts(sample_id=f"ct-{i}") if i % 2 == 0 else mr_brain_facts(sample_id=f"mr-{i}")
        f = dataclasses.replace(f, image=dataclasses.replace(f.image, source=f"src{i}"))
        reqs.append(build_request(f, image_png=tiny_png(40 + 8 * i, 32 + 4 * i)))
    results = backend.generate(reqs)
    assert [r.sample_id for r in results] == [r.sample_id for r in reqs]
    for r in results:
        # a random model writes gibberish: it must be failed with the parser's reason, never kept as text
        assert r.status == "failed", r
        assert r.reason.startswith(("invalid JSON", "schema violation", "empty reply", "contradicts")), r.reason
        assert r.description == "" and r.completion_tokens > 0 and r.prompt_tokens > 0
    # identical inputs give identical outputs (greedy decoding)
    again = backend.generate(reqs[:1])
    assert again[0].reason == results[0].reason


def test_missing_image_and_bad_directory_are_clear(tiny_model_dir, tmp_path):
    backend = make_backend(GeneratorSection(backend="transformers", model_dir=str(tiny_model_dir), max_new_tokens=4))
    [res] = backend.generate([build_request(ct_liver_facts(), image_png=None)])
    assert res.status == "failed" and "image" in res.reason
    with pytest.raises(FileNotFoundError, match="config.json"):
        make_backend(GeneratorSection(backend="transformers", model_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="model_dir"):
        make_backend(GeneratorSection(backend="transformers"))


def test_a_valid_reply_becomes_attributes(tiny_model_dir, monkeypatch):
    """The decoding step is the only thing replaced: a well-formed reply must come out as ok attributes."""
    import json

    backend = make_backend(GeneratorSection(backend="transformers", model_dir=str(tiny_model_dir), max_new_tokens=4))
    answer = {"modality": "Axial CT", "organ": "Abdomen with the liver", "roi_location": "A small lesion on the patient's left in the liver.",
              "texture": "Hypodense, homogeneous, round, well-defined.", "relations": "It lies within the liver.",
              "description": "An axial CT of the abdomen shows a small hypodense round lesion on the patient's left within the liver."}
    monkeypatch.setattr(backend.processor, "batch_decode", lambda ids, **kw: ["noise " + json.dumps(answer)] * len(ids))
    [res] = backend.generate([build_request(ct_liver_facts(), image_png=tiny_png())])
    assert res.ok, res.reason
    assert res.attributes["roi_location"].startswith("A small lesion") and "hypodense" in res.description
