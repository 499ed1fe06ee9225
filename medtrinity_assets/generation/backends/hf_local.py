"""Generator over a local Hugging Face image-text-to-text model (LLaVA, LLaVA-Med, Qwen-VL style) from a directory.

Loaded through the ordinary path (``AutoProcessor`` + ``AutoModelForImageTextToText``), generation is
batched with left padding on the configured device, and each reply goes through the same parser
and fact check as the API backend: an unusable reply is a failed sample with its reason, never text
written anyway. torch/transformers are imported only when the backend is built.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

from medtrinity_assets.generation.answer import parse_answer
from medtrinity_assets.generation.backends import set_fields
from medtrinity_assets.generation.prompt import DEFAULT_PROMPT, load_template
from medtrinity_assets.generation.results import STATUS_OK, GenerationResult, PromptRequest, failed

if TYPE_CHECKING:
    from medtrinity_assets.config.sections import GeneratorSection

VERSION = "hf-local-1.0"


class TransformersBackend:
    name = "transformers"
    needs_image = True

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        batch_size: int = 4,
        max_new_tokens: int = 512,
        dtype: str = "auto",
        send_overlay: bool = False,
        prompt: str = DEFAULT_PROMPT,
        check_facts: bool = True,
    ) -> None:
        import hashlib
        import json

        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"generator.model_dir {path}: no config.json; point it at a saved Hugging Face model directory")
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = int(max_new_tokens)
        self.send_overlay = send_overlay
        self.schema = load_template(prompt).schema
        self.check_facts = check_facts
        self.processor = AutoProcessor.from_pretrained(path)
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # decoder-only batched generation continues from the right edge
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.net = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype).to(device).eval()
        cfg = json.loads((path / "config.json").read_text())
        # model identity: directory name + digest of its config and weight index (a retrained model is a new id)
        h = hashlib.sha256((path / "config.json").read_bytes())
        for weights in sorted(path.glob("*.safetensors*")) + sorted(path.glob("*.bin")):
            h.update(weights.name.encode())
            h.update(str(weights.stat().st_size).encode())
        self.model = f"{path.name}({cfg.get('model_type', '?')})#{h.hexdigest()[:12]}"  # identity string
        self.version = VERSION

    @classmethod
    def from_settings(cls, settings: GeneratorSection) -> TransformersBackend:
        """From the typed ``generator`` section (which guarantees model_dir); unset fields keep the defaults above."""
        return cls(model_dir=settings.model_dir, **set_fields(settings, ("device", "batch_size", "max_new_tokens", "dtype",
                                                                        "send_overlay", "prompt", "check_facts")))

    def _inputs(self, req: PromptRequest):
        from PIL import Image

        images = []
        for png in (req.image_png, req.overlay_png if self.send_overlay else None):
            if png:
                with Image.open(io.BytesIO(png)) as im:
                    images.append(im.convert("RGB"))
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": req.user}]
        messages = [{"role": "system", "content": [{"type": "text", "text": req.system}]}, {"role": "user", "content": content}]
        if getattr(self.processor, "chat_template", None):
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:  # a processor without a chat template: plain prompt with one image token per image
            token = getattr(self.processor, "image_token", "<image>")
            text = " ".join([token] * len(images)) + "\n" + req.system + "\n" + req.user + "\n"
        return text, images

    def generate(self, batch: list[PromptRequest]) -> list[GenerationResult]:
        import torch

        results: list[GenerationResult] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            t0 = time.perf_counter()
            missing = [r for r in chunk if not r.image_png]
            if missing:
                results.extend(failed(r.sample_id, "no image bytes in the request (the transformers backend needs the image)") for r in chunk)
                continue
            try:
                texts, images = zip(*(self._inputs(r) for r in chunk))
                flat_images = [im for ims in images for im in ims]
                enc = self.processor(text=list(texts), images=flat_images, padding=True, return_tensors="pt").to(self.device)
                if "pixel_values" in enc and enc["pixel_values"].is_floating_point():  # bf16/fp16 weights need matching pixels
                    enc["pixel_values"] = enc["pixel_values"].to(self.net.dtype)
                with torch.inference_mode():
                    out = self.net.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False)
                new_tokens = out[:, enc["input_ids"].shape[1]:]
                replies = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
            except Exception as exc:  # a model error fails this batch's samples, not the run
                results.extend(failed(r.sample_id, f"generation error: {type(exc).__name__}: {str(exc)[:200]}") for r in chunk)
                continue
            latency = (time.perf_counter() - t0) / len(chunk)
            pad = getattr(getattr(self.processor, "tokenizer", None), "pad_token_id", None)
            for req, reply, row, ids in zip(chunk, replies, new_tokens, enc["input_ids"]):
                n_prompt = int((ids != pad).sum()) if pad is not None else int(ids.numel())
                n_out = int((row != pad).sum()) if pad is not None else int(row.numel())
                parsed = parse_answer(reply, self.schema, req.facts, check_facts=self.check_facts)
                if not parsed.ok:
                    results.append(failed(req.sample_id, parsed.reason, prompt_tokens=n_prompt, completion_tokens=n_out, latency_s=latency, attempts=1))
                    continue
                results.append(GenerationResult(
                    sample_id=req.sample_id, status=STATUS_OK, description=parsed.description, attributes=parsed.attributes,
                    clauses=[{"field": "all", "text": parsed.description, "source": f"model:{self.model}"}],
                    prompt_tokens=n_prompt, completion_tokens=n_out, latency_s=latency, attempts=1,
                ))
        return results

    def close(self) -> None:
        self.net = None
