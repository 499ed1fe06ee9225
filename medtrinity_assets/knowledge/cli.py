"""``medtrinity kb search "TEXT" --k 5``: what the pipeline would retrieve for a query, as JSON lines.

Searches the corpus indexes materialised under the config's ``data_root``; when none exist yet it
builds an in-memory index of the bundled core corpus, so the command works on a fresh checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _retriever(config: str | None, encoder_override: str, corpora: list[str] | None):
    from medtrinity_assets.config import ConfigError, read_config
    from medtrinity_assets.knowledge.chunking import passages_table, tokenizer_for
    from medtrinity_assets.knowledge.corpus import bundled_core_path, read_corpus
    from medtrinity_assets.knowledge.embedding import load_encoder
    from medtrinity_assets.knowledge.index import MANIFEST_FILE, CorpusIndex, build_corpus_index
    from medtrinity_assets.knowledge.retrieval import Retriever
    from medtrinity_assets.knowledge.settings import KnowledgeSettings, settings_from_config
    from medtrinity_assets.storage import DataLayout

    cfg = None
    try:
        cfg = read_config(config) if config else None
    except ConfigError as exc:
        if Path(config).exists():
            raise
        print(f"note: {exc}; searching the bundled core corpus", file=sys.stderr)
    settings = settings_from_config(cfg, encoder_override) if cfg else KnowledgeSettings(encoder=encoder_override)
    encoder = load_encoder(settings.encoder, device=settings.device, batch_size=settings.batch_size)
    folders: list[Path] = []
    if cfg is not None:
        root = DataLayout(cfg.data_root).knowledge
        names = corpora or [c.name for c in cfg.corpora]
        folders = [root / n for n in names if (root / n / MANIFEST_FILE).is_file()]
    if folders:
        return Retriever([CorpusIndex.load(f) for f in folders], encoder)
    core = next((c for c in (cfg.corpora if cfg else ()) if c.format == "core"), None)
    path = core.path if core else bundled_core_path()
    print(f"note: no materialised knowledge index found; indexing the core corpus at {path} in memory",
          file=sys.stderr)
    table = passages_table("core", read_corpus("core", path), tokenizer_for(encoder.spec.path),
                           settings.chunk_tokens, settings.overlap)
    return Retriever([build_corpus_index("core", table, encoder, settings)], encoder)


def cmd_search(args: argparse.Namespace) -> int:
    from medtrinity_assets.knowledge.index import KnowledgeIndexError

    try:
        retriever = _retriever(args.config, args.encoder or "", args.corpus)
    except KnowledgeIndexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for hit in retriever.search([args.text], args.k)[0]:
        print(json.dumps({"title": hit.title, "corpus": hit.corpus, "score": round(hit.score, 4),
                          "passage_id": hit.passage_id, "text": hit.text}, ensure_ascii=False))
    return 0


def add_commands(subparsers) -> None:
    """Register ``kb search`` on the ``medtrinity`` command's subparsers."""
    kb = subparsers.add_parser("kb", help="query the knowledge base")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    search = kb_sub.add_parser("search", help="print the top passages for TEXT as JSON lines")
    search.add_argument("text")
    search.add_argument("--k", type=int, default=5, help="passages to print (default: %(default)s)")
    search.add_argument("--config", default=os.environ.get("MEDTRINITY_CONFIG", "data/sources.yaml"),
                        help="sources YAML whose data_root holds the indexes (default: %(default)s)")
    search.add_argument("--corpus", action="append", help="search only this corpus (repeatable)")
    search.add_argument("--encoder", help="encoder folder to use instead of the config's knowledge.encoder")
    search.set_defaults(func=cmd_search)
