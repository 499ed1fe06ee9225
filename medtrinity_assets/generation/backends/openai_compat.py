"""Generator over any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, OpenAI's GPT-4o).

Why each part is here:
- bounded concurrency (an asyncio semaphore around each HTTP call) keeps a shared server usable;
- timeouts + retries with exponential backoff on 429/5xx/timeouts ride out overloaded servers;
- the answer is validated (JSON schema + consistency with the facts) and, once, sent back with the
  error for repair; a second bad answer, a refusal or exhausted retries mark the sample failed;
- successful answers are cached on disk by model + prompt hash + image hash, so reruns cost nothing;
  failures are never cached, so they are retried on the next run.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from medtrinity_assets.generation.answer import parse_answer
from medtrinity_assets.generation.backends import set_fields
from medtrinity_assets.generation.cache import ResponseCache, cache_key
from medtrinity_assets.generation.prompt import DEFAULT_PROMPT, load_template
from medtrinity_assets.generation.results import STATUS_OK, GenerationResult, PromptRequest, failed

if TYPE_CHECKING:
    from medtrinity_assets.config.sections import GeneratorSection

VERSION = "openai-compat-1.0"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class _Call:
    """Outcome of one chat call after retries."""

    content: str | None = None
    refusal: str | None = None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0


@dataclass
class _Stats:
    in_flight: int = 0
    max_in_flight: int = 0
    http_calls: int = 0
    retries: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class OpenAICompatBackend:
    name = "openai"
    needs_image = True

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_tokens: int = 800,
        temperature: float = 0.2,
        response_format: str = "json_object",
        send_overlay: bool = True,
        cache_dir: Path | None = None,
        prompt: str = DEFAULT_PROMPT,
        check_facts: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("generator.concurrency must be >= 1")
        if response_format not in ("json_object", "json_schema", "none"):
            raise ValueError(f"generator.response_format {response_format!r}: use json_object, json_schema or none")
        self.model = model
        self.version = VERSION
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.response_format = response_format
        self.send_overlay = send_overlay
        self.cache = ResponseCache(cache_dir)
        self.schema = load_template(prompt).schema
        self.check_facts = check_facts
        self.last_stats: dict = {}

    @classmethod
    def from_settings(cls, settings: GeneratorSection, cache_dir: Path | None = None) -> OpenAICompatBackend:
        """From the typed ``generator`` section (which guarantees model and base_url); unset fields keep the defaults above."""
        api_key = None
        env = settings.api_key_env
        if env:
            api_key = os.environ.get(env)
            if not api_key:
                raise ValueError(f"generator.api_key_env names ${env}, which is not set; export it or remove api_key_env for a local server")
        return cls(
            model=settings.model,
            base_url=settings.base_url,
            api_key=api_key,
            cache_dir=settings.cache_dir or cache_dir,
            **set_fields(settings, ("concurrency", "timeout_s", "max_retries", "backoff_s", "max_backoff_s", "max_tokens",
                                    "temperature", "response_format", "send_overlay", "prompt", "check_facts")),
        )

    # -- public API ---------------------------------------------------------------------------
    def generate(self, batch: list[PromptRequest]) -> list[GenerationResult]:
        """Results in request order; runs its own event loop (in a worker thread if one is already running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(batch))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.agenerate(batch)).result()

    async def agenerate(self, batch: list[PromptRequest]) -> list[GenerationResult]:
        stats = _Stats()
        sem = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout_s, limits=limits,
                                     verify=self._ssl_context()) as client:
            results = await asyncio.gather(*(self._one(client, sem, stats, r) for r in batch))
        self.last_stats = {"max_in_flight": stats.max_in_flight, "http_calls": stats.http_calls, "retries": stats.retries}
        return list(results)

    def close(self) -> None:
        pass

    def _ssl_context(self):
        """Built once per backend: loading the CA bundle costs ~0.1 s, too much per batch."""
        if getattr(self, "_ssl", None) is None:
            import ssl

            self._ssl = ssl.create_default_context()
        return self._ssl

    # -- one sample ---------------------------------------------------------------------------
    def _messages(self, req: PromptRequest) -> list[dict]:
        content: list[dict] = [{"type": "text", "text": req.user}]
        if req.image_png:
            content.append({"type": "image_url", "image_url": {"url": data_url(req.image_png)}})
        if req.overlay_png and self.send_overlay:
            content.append({"type": "image_url", "image_url": {"url": data_url(req.overlay_png)}})
        return [{"role": "system", "content": req.system}, {"role": "user", "content": content}]

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, stats: _Stats, req: PromptRequest) -> GenerationResult:
        t0 = time.perf_counter()
        key = cache_key(self.model, req.request_sha256, req.image_sha256)
        hit = self.cache.get(key)
        if hit is not None:
            return GenerationResult(
                sample_id=req.sample_id, status=STATUS_OK, description=hit["description"], attributes=hit["attributes"],
                clauses=[{"field": "all", "text": hit["description"], "source": f"model:{self.model}"}],
                prompt_tokens=0, completion_tokens=0, latency_s=time.perf_counter() - t0, attempts=0, cached=True,
            )
        messages = self._messages(req)
        call = await self._chat(client, sem, stats, messages)
        tokens = [call.prompt_tokens, call.completion_tokens]
        attempts = call.attempts

        def fail(reason: str) -> GenerationResult:
            return failed(req.sample_id, reason, prompt_tokens=tokens[0], completion_tokens=tokens[1],
                          latency_s=time.perf_counter() - t0, attempts=attempts)

        if call.error:
            return fail(call.error)
        if call.refusal:
            return fail(f"refused: {call.refusal[:200]}")
        parsed = parse_answer(call.content, self.schema, req.facts, check_facts=self.check_facts)
        if parsed.refusal:
            return fail(parsed.reason)
        if not parsed.ok:
            first_reason = parsed.reason
            repair = messages + [
                {"role": "assistant", "content": call.content or ""},
                {"role": "user", "content": (
                    f"Your answer could not be used: {first_reason}. Reply again with only the JSON object, "
                    "valid against the schema, stating only what the facts give."
                )},
            ]
            call = await self._chat(client, sem, stats, repair)
            tokens[0] += call.prompt_tokens
            tokens[1] += call.completion_tokens
            attempts += call.attempts
            if call.error:
                return fail(f"{call.error} (during repair of: {first_reason})")
            if call.refusal:
                return fail(f"refused: {call.refusal[:200]}")
            parsed = parse_answer(call.content, self.schema, req.facts, check_facts=self.check_facts)
            if not parsed.ok:
                return fail(f"answer invalid twice: first {first_reason}; after repair {parsed.reason}")
        self.cache.put(key, {"model": self.model, "description": parsed.description, "attributes": parsed.attributes,
                             "prompt_tokens": tokens[0], "completion_tokens": tokens[1]})
        return GenerationResult(
            sample_id=req.sample_id, status=STATUS_OK, description=parsed.description, attributes=parsed.attributes,
            clauses=[{"field": "all", "text": parsed.description, "source": f"model:{self.model}"}],
            prompt_tokens=tokens[0], completion_tokens=tokens[1], latency_s=time.perf_counter() - t0, attempts=attempts,
        )

    def _body(self, messages: list[dict]) -> dict:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif self.response_format == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "medtrinity_description", "schema": self.schema, "strict": True}}
        return body

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass
        return min(self.backoff_s * (2 ** attempt) * (0.5 + random.random()), self.max_backoff_s)

    async def _chat(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, stats: _Stats, messages: list[dict]) -> _Call:
        """POST /chat/completions with retries; the semaphore is held only while a request is in flight."""
        body = self._body(messages)
        out = _Call()
        last_error = ""
        for attempt in range(self.max_retries + 1):
            out.attempts += 1
            retry_after = None
            async with sem:
                stats.in_flight += 1
                stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                stats.http_calls += 1
                try:
                    resp = await client.post("/chat/completions", json=body)
                except httpx.TimeoutException:
                    resp, last_error = None, f"timeout after {self.timeout_s:g} s"
                except httpx.TransportError as exc:
                    resp, last_error = None, f"connection error: {type(exc).__name__}: {exc}"
                finally:
                    stats.in_flight -= 1
            if resp is not None:
                if resp.status_code == 200:
                    try:
                        payload = resp.json()
                        message = payload["choices"][0]["message"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        last_error = f"malformed chat-completions response: {resp.text[:120]!r}"
                        return _Call(error=last_error, attempts=out.attempts)
                    usage = payload.get("usage") or {}
                    out.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                    out.completion_tokens += int(usage.get("completion_tokens") or 0)
                    out.content = message.get("content")
                    if isinstance(out.content, list):  # some servers return content parts
                        out.content = "".join(p.get("text", "") for p in out.content if isinstance(p, dict))
                    out.refusal = message.get("refusal")
                    return out
                last_error = f"HTTP {resp.status_code}: {resp.text[:160]}"
                if resp.status_code not in RETRY_STATUS:
                    out.error = last_error + " (not retried)"
                    return out
                retry_after = resp.headers.get("retry-after")
            if attempt < self.max_retries:
                stats.retries += 1
                await asyncio.sleep(self._delay(attempt, retry_after))
        out.error = f"{last_error} (gave up after {out.attempts} attempts)"
        return out
