"""The openai-compatible backend against a real loopback HTTP server: concurrency, retries, repair, cache."""

from __future__ import annotations

import dataclasses
import json

import pytest

from medtrinity_assets.config.sections import GeneratorSection
from medtrinity_assets.generation.backends import make_backend
from medtrinity_assets.generation.backends.openai_compat import OpenAICompatBackend
from medtrinity_assets.generation.prompt import build_request
from medtrinity_assets_tests.support.generation import (
    LoopbackChatServer,
    Reply,
    ct_liver_facts,
    echo_answer,
    is_repair,
    tiny_png,
    user_text,
)


def requests_for(sources: list[str]):
    reqs = []
    for s in sources:
        f = ct_liver_facts(sample_id=f"id-{s}")
        f = dataclasses.replace(f, image=dataclasses.replace(f.image, source=s, caption_in=f"Case {s}."))
        reqs.append(build_request(f, image_png=tiny_png()))
    return reqs


def backend(server, tmp_path=None, **kw) -> OpenAICompatBackend:
    opts = dict(model="test-vlm", base_url=server.base_url, concurrency=4, timeout_s=5.0, max_retries=3, backoff_s=0.01,
                cache_dir=(tmp_path / "cache") if tmp_path else None)
    opts.update(kw)
    return OpenAICompatBackend(**opts)


def test_request_carries_images_as_data_urls_and_schema():
    seen = []

    def responder(body, attempt):
        seen.append(body)
        return Reply(content=echo_answer(body))

    with LoopbackChatServer(responder) as server:
        [res] = backend(server, response_format="json_schema").generate(requests_for(["a"]))
    assert res.ok, res.reason
    body = seen[0]
    parts = body["messages"][1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)  # image + ROI overlay
    assert body["response_format"]["type"] == "json_schema"
    assert "Measured regions (2;" in user_text(body) and "patient side: left" in user_text(body)
    assert "box x0=0.550 y0=0.300 x1=0.650 y1=0.400" in user_text(body)  # boxes as coordinates beside the overlay
    assert res.prompt_tokens > 50 and res.completion_tokens > 5


def test_concurrency_never_exceeds_the_limit():
    with LoopbackChatServer(latency_s=0.05) as server:
        b = backend(server, concurrency=3)
        results = b.generate(requests_for([f"s{i}" for i in range(15)]))
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    assert server.max_in_flight == 3  # reached, never exceeded
    assert b.last_stats["max_in_flight"] <= 3
    assert len(server.requests) == 15


def test_retries_on_500_and_429_then_succeeds():
    def responder(body, attempt):
        if "flaky" in user_text(body):
            if attempt == 0:
                return Reply(status=500)
            if attempt == 1:
                return Reply(status=429, headers={"Retry-After": "0"})
        return Reply(content=echo_answer(body))

    with LoopbackChatServer(responder) as server:
        b = backend(server)
        flaky, steady = b.generate(requests_for(["flaky", "steady"]))
    assert flaky.ok and flaky.attempts == 3
    assert steady.ok and steady.attempts == 1
    assert b.last_stats["retries"] == 2


def test_persistent_500_fails_with_reason_and_is_not_cached(tmp_path):
    def always_500(body, attempt):
        return Reply(status=503)

    with LoopbackChatServer(always_500) as server:
        [res] = backend(server, tmp_path, max_retries=2).generate(requests_for(["x"]))
        assert not res.ok and "HTTP 503" in res.reason and "3 attempts" in res.reason
        assert not res.description
        n = len(server.requests)
        backend(server, tmp_path, max_retries=0).generate(requests_for(["x"]))
        assert len(server.requests) == n + 1  # a failure is retried on the next run


def test_timeout_marks_failed():
    def slow(body, attempt):
        return Reply(content=echo_answer(body), delay_s=1.0)

    with LoopbackChatServer(slow) as server:
        [res] = backend(server, timeout_s=0.2, max_retries=1).generate(requests_for(["slow"]))
    assert not res.ok and "timeout" in res.reason and res.attempts == 2


def test_invalid_json_is_repaired_once():
    def responder(body, attempt):
        if not is_repair(body):
            return Reply(content="Sure! Here is the description: modality CT, organ abdomen")
        assert "invalid JSON" in body["messages"][-1]["content"]
        return Reply(content="```json\n" + echo_answer(body) + "\n```")

    with LoopbackChatServer(responder) as server:
        [res] = backend(server).generate(requests_for(["r"]))
    assert res.ok, res.reason
    assert res.attempts == 2 and "CT" in res.attributes["modality"]


def test_invalid_twice_fails_without_description():
    def responder(body, attempt):
        return Reply(content=json.dumps({"modality": "CT"}))  # schema violation both times

    with LoopbackChatServer(responder) as server:
        [res] = backend(server).generate(requests_for(["bad"]))
        assert len(server.requests) == 2
    assert not res.ok and "invalid twice" in res.reason and "required" in res.reason
    assert res.description == "" and res.attributes == {}


def test_contradicting_answer_is_rejected():
    def responder(body, attempt):
        answer = json.loads(echo_answer(body))
        answer["roi_location"] = "A lesion in the right lobe of the liver."  # the facts say left
        return Reply(content=json.dumps(answer))

    with LoopbackChatServer(responder) as server:
        [res] = backend(server).generate(requests_for(["c"]))
    assert not res.ok and "side 'right'" in res.reason


def test_pipeline_language_is_sent_back_and_a_clean_repair_is_kept():
    """The gate the composer's text passes is applied to the model's answer: talk about marks and regions of
    interest is rejected with its reason, and the repaired answer is used."""
    def responder(body, attempt):
        answer = json.loads(echo_answer(body))
        if not is_repair(body):
            answer["description"] += " The region of interest is marked on the overlay."
        else:
            assert "pipeline_language 'region of interest'" in user_text({"messages": body["messages"][-1:]}) or \
                "pipeline_language" in json.dumps(body["messages"][-1])
        return Reply(content=json.dumps(answer))

    with LoopbackChatServer(responder) as server:
        [res] = backend(server).generate(requests_for(["p"]))
        assert len(server.requests) == 2
    assert res.ok and "marked" not in res.description and res.attempts == 2


@pytest.mark.parametrize("how", ["field", "text"])
def test_refusal_fails(how):
    def responder(body, attempt):
        if how == "field":
            return Reply(content=None, refusal="I can't help with medical images.")
        return Reply(content="I'm sorry, but I cannot describe this image.")

    with LoopbackChatServer(responder) as server:
        [res] = backend(server).generate(requests_for(["no"]))
        assert len(server.requests) == 1  # a refusal is not argued with
    assert not res.ok and res.reason.startswith("refused")


def test_cache_makes_rerun_free(tmp_path):
    with LoopbackChatServer(latency_s=0.01) as server:
        reqs = requests_for(["a", "b", "c"])
        first = backend(server, tmp_path).generate(reqs)
        assert len(server.requests) == 3
        server.reset_counts()
        second = backend(server, tmp_path).generate(requests_for(["a", "b", "c"]))
        assert len(server.requests) == 0
        assert [r.description for r in first] == [r.description for r in second]
        assert all(r.cached and r.prompt_tokens == 0 for r in second)
        # a different model is a different cache key
        backend(server, tmp_path, model="other-vlm").generate(reqs[:1])
        assert len(server.requests) == 1


def test_factory_reads_api_key_env(monkeypatch):
    server = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "MEDTRINITY_TEST_KEY"}
    with pytest.raises(ValueError, match="MEDTRINITY_TEST_KEY"):
        make_backend(GeneratorSection(**server))
    monkeypatch.setenv("MEDTRINITY_TEST_KEY", "sk-test")
    b = make_backend(GeneratorSection(**server, concurrency=2))
    assert b.api_key == "sk-test" and b.concurrency == 2
    # fields the section leaves unset are the constructor's defaults (declared there only)
    default = OpenAICompatBackend(model="m", base_url="http://127.0.0.1:9/v1")
    assert (b.timeout_s, b.max_retries, b.send_overlay, b.check_facts, b.response_format) == (
        default.timeout_s, default.max_retries, default.send_overlay, default.check_facts, default.response_format)
    with pytest.raises(ValueError, match="model"):
        make_backend(GeneratorSection(backend="openai"))
