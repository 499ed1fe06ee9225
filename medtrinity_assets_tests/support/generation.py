"""Test helpers of the generation stage: a loopback OpenAI-compatible server, a tiny random VLM, sample facts.

The server is real HTTP on 127.0.0.1 speaking ``POST /v1/chat/completions`` (JSON in, JSON out with
``usage``), so the backend's client, retries and timeouts are exercised over a socket. A test gives
it a ``responder(body, attempt) -> Reply``; it counts requests and the peak number in flight.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from medtrinity_assets.generation.sample_facts import ImageFacts, Passage, SampleFacts
from medtrinity_assets.roi.facts import Relations, RoiFacts, attenuation_class


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # assistant message text (status 200)
    refusal: str | None = None
    raw_body: str | None = None  # sent verbatim instead of a chat-completions object
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)


def user_text(body: dict) -> str:
    """The first user message's text part (the rendered prompt)."""
    for m in body.get("messages", []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            return "".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


def is_repair(body: dict) -> bool:
    return sum(1 for m in body.get("messages", []) if m.get("role") == "user") > 1


def echo_answer(body: dict) -> str:
    """A valid answer built from the prompt's own coarse caption, so it never contradicts the facts."""
    m = re.search(r"(?:Coarse caption \(metadata\)|Image facts): (.*)", user_text(body))
    caption = m.group(1).strip() if m else "An image."
    return json.dumps({
        "modality": caption.split(",")[0],
        "organ": caption,
        "roi_location": "As measured.",
        "texture": "As measured.",
        "relations": "As measured.",
        "description": f"{caption} Each finding appears as its measurements describe.",
    })


def default_responder(body: dict, attempt: int) -> Reply:
    return Reply(content=echo_answer(body))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: many clients connect at once

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client closed its keep-alive connection: normal
        super().handle_error(request, client_address)


class LoopbackChatServer:
    """A threaded HTTP server on 127.0.0.1 that answers chat completions as a test tells it to."""

    def __init__(self, responder: Callable[[dict, int], Reply] | None = None, latency_s: float = 0.0) -> None:
        self.responder = responder or default_responder
        self.latency_s = latency_s
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes; with Nagle on, the body waits for the client's delayed ACK
            # (~40 ms on Linux), which would add a fixed stall to every request of a keep-alive connection
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                body = json.loads(raw)
                key = hashlib.sha256(user_text(body).encode()).hexdigest()
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.requests.append(body)
                    attempt = server.attempts.get(key, 0)
                    server.attempts[key] = attempt + 1
                try:
                    reply = server.responder(body, attempt)
                    time.sleep(server.latency_s + reply.delay_s)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if reply.raw_body is not None:
                    payload = reply.raw_body.encode()
                elif reply.status == 200:
                    text = user_text(body)
                    payload = json.dumps({
                        "id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": reply.content, "refusal": reply.refusal}}],
                        "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len((reply.content or "").split()),
                                  "total_tokens": len(text.split()) + len((reply.content or "").split())},
                    }).encode()
                else:
                    payload = json.dumps({"error": {"message": f"injected {reply.status}"}}).encode()
                try:
                    self._send(reply.status, payload, reply.headers)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.attempts.clear()
            self.max_in_flight = 0

    def __enter__(self) -> LoopbackChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- a tiny, randomly initialised LLaVA built offline --------------------------------------------
TINY_WORDS = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "{", "}", "[", "]", ":", ",", '"', ".",
              "modality", "organ", "roi_location", "texture", "relations", "description", "ct", "mri",
              "the", "a", "liver", "brain", "lesion", "left", "right", "small", "large"]


def build_tiny_llava(directory: Path, seed: int = 0) -> Path:
    """Save a LLaVA (tiny CLIP vision tower + tiny Llama) with a WordLevel tokenizer and a processor."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {w: i for i, w in enumerate(TINY_WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<pad>", "<unk>", "<s>", "</s>", "<image>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", padding_side="left")
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=len(TINY_WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                       pad_token_id=0, bos_token_id=2, eos_token_id=3)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"],
                         image_seq_length=16, vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    chat_template = (
        "{% for m in messages %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
        "{% endfor %}{% endfor %}"
    )
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               num_additional_image_tokens=1, vision_feature_select_strategy="default",
                               chat_template=chat_template)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


# --- sample facts -------------------------------------------------------------------------------
def ct_liver_facts(sample_id: str = "ct-1", side: str = "left", n_passages: int = 1) -> SampleFacts:
    passages = (
        Passage("core-liver-1", 0.82, "core", "Liver metastasis",
                "Liver metastases are the commonest malignant liver lesions. On portal venous CT they are usually "
                "hypodense, round or lobulated, often multiple. Hypervascular metastases can appear hyperdense in the arterial phase."),
    )[:n_passages]
    return SampleFacts(
        image=ImageFacts(sample_id=sample_id, source="phantom_ct", modality="CT", organ="abdomen",
                         labels=("liver_metastasis",), axis="axial", window="ct:abdomen(40/400)"),
        rois=(
            RoiFacts(roi_id="r1", label="liver_metastasis", origin="ground_truth", side=side, vertical_position="upper",
                     ap_position="anterior", region="liver", bbox=(0.55, 0.30, 0.65, 0.40), size_class="small",
                     area_fraction=0.008, long_axis_mm=9.4, short_axis_mm=8.1, intensity="hypodense", contrast=-60.0,
                     contrast_unit="HU", mean_value=0.0, surround_value=60.0, value_unit="HU", attenuation="fluid",
                     texture="homogeneous", shape="round", margin="well_defined",
                     relations=Relations(inside=("liver",), nearest_organ="liver", distance_to_organ_edge_mm=7.5)),
            RoiFacts(roi_id="a1", label="liver", kind="anatomy", origin="ground_truth", area_fraction=0.12,
                     bbox=(0.45, 0.2, 0.85, 0.6)),
        ),
        passages=passages,
    )


def mr_brain_facts(sample_id: str = "mr-1") -> SampleFacts:
    return SampleFacts(
        image=ImageFacts(sample_id=sample_id, source="brain_mr", modality="MR", organ="brain", labels=("glioma",)),
        rois=(RoiFacts(roi_id="r1", label="glioma", origin="ground_truth", side="right", region="brain", size_class="large",
                       area_fraction=0.06, intensity="hyperintense", texture="heterogeneous", shape="irregular",
                       margin="ill_defined"),),
    )


def tiny_png(w: int = 48, h: int = 40, value: int = 90) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    arr = (np.arange(w * h, dtype=np.uint32).reshape(h, w) * 7 + value) % 256
    buf = io.BytesIO()
    Image.fromarray(arr.astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


def phantom_samples(seed: int = 0, indices=range(6)) -> list[tuple[SampleFacts, dict]]:
    """Facts of the phantom's lesion slices taken from its known truth: (facts, truth per ROI id)."""
    import numpy as np

    from medtrinity_assets.demo.phantom import ORGAN_LABELS, make_phantom

    out = []
    for index in indices:
        ph = make_phantom(seed, index)
        h, w = ph.label_map.shape[1:]
        for les in ph.lesions:
            z = max(les["slice_areas_px"], key=les["slice_areas_px"].get)
            rois, truth = [], {}
            for other in ph.lesions:  # every lesion visible on that slice
                area = int(np.count_nonzero(ph.label_map[z] == other["label"]))
                if area == 0:
                    continue
                rid = f"les{other['label']}"
                ys, xs = np.nonzero(ph.label_map[z] == other["label"])
                diameter = 2.0 * float(np.sqrt(area * ph.spacing[1] * ph.spacing[2] / np.pi))  # this slice's section
                rois.append(RoiFacts(
                    roi_id=rid, label=other["name"], kind="finding", origin="ground_truth", side=other["side"],
                    region=other["organ"], bbox=(xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h),
                    area_fraction=area / (h * w), size_class=other["size_class"], long_axis_mm=diameter,
                    short_axis_mm=diameter, intensity=other["intensity"], contrast=other["contrast_hu"],
                    contrast_unit="HU", mean_value=other["mean_hu"], surround_value=other["background_hu"],
                    value_unit="HU", attenuation=attenuation_class(other["mean_hu"]), texture=other["texture"],
                    shape=other["shape"], margin="well_defined", relations=Relations(inside=(other["organ"],))))
                truth[rid] = other
            for value, organ in ORGAN_LABELS.items():
                if np.any(ph.label_map[z] == value):
                    rois.append(RoiFacts(roi_id=f"org{value}", label=organ, kind="anatomy", origin="ground_truth",
                                         area_fraction=float(np.mean(ph.label_map[z] == value))))
            image = ImageFacts(sample_id=f"{ph.subject_id}_z{z:02d}", source="phantom_ct", modality="CT", organ="abdomen",
                               labels=tuple(sorted({t["name"].replace(" ", "_") for t in truth.values()})), axis="axial",
                               window="ct:abdomen(40/400)", slice_index=z, pixel_spacing=(ph.spacing[1], ph.spacing[2]),
                               width=w, height=h)
            out.append((SampleFacts(image=image, rois=tuple(rois)), truth))
    return out
