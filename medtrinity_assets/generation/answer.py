"""Turning a language model's reply into attributes + paragraph, or a precise reason why it cannot be used.

The reply must be one JSON object that validates against the prompt's schema and states nothing
the facts contradict, judged by the same scorer as the blocking quality gate
(:mod:`medtrinity_assets.quality.consistency`). The reason is sent back once as a repair request
(openai backend) and is stored on failed triplets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from jsonschema import Draft202012Validator

from medtrinity_assets.generation.sample_facts import SampleFacts
from medtrinity_assets.quality.consistency import score_triplet
from medtrinity_assets.tables import ATTRIBUTES

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
REFUSAL_RE = re.compile(r"^\s*(i('| a)m sorry|i can(no|')t|i am unable|i'm unable|as an ai|i cannot)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAnswer:
    ok: bool
    reason: str = ""
    attributes: dict | None = None
    description: str = ""
    refusal: bool = False


_VALIDATORS: dict[int, tuple[dict, Draft202012Validator]] = {}


def _validator(schema: dict) -> Draft202012Validator:
    """One compiled validator per schema object (templates are loaded once and cached)."""
    hit = _VALIDATORS.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, Draft202012Validator(schema))
        _VALIDATORS[id(schema)] = hit
    return hit[1]


def extract_json_object(text: str) -> object:
    """The JSON value in a reply: the whole text, a ```json fenced block, or the outermost {...} span."""
    text = text.strip()
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCE_RE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    last_error = None
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError as exc:
            last_error = exc
    raise ValueError(f"not JSON ({last_error.msg} at char {last_error.pos})" if last_error else "empty reply")


def parse_answer(text: str | None, schema: dict, facts: SampleFacts, check_facts: bool = True) -> ParsedAnswer:
    if text is None or not text.strip():
        return ParsedAnswer(False, "empty reply")
    if REFUSAL_RE.match(text) and "{" not in text:
        return ParsedAnswer(False, f"refused: {text.strip()[:200]}", refusal=True)
    try:
        obj = extract_json_object(text)
    except ValueError as exc:
        return ParsedAnswer(False, f"invalid JSON: {exc}; reply began {text.strip()[:80]!r}")
    errors = sorted(_validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        msgs = [f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message[:160]}" for e in errors[:5]]
        return ParsedAnswer(False, "schema violation: " + "; ".join(msgs))
    attributes = {k: " ".join(str(obj[k]).split()) for k in ATTRIBUTES}
    description = " ".join(str(obj["description"]).split())
    if check_facts:
        issues = score_triplet(description, attributes, facts.scorer_facts())
        if issues:
            return ParsedAnswer(False, "contradicts the facts: " + "; ".join(i.reason() for i in issues[:5]))
    return ParsedAnswer(True, attributes=attributes, description=description)
