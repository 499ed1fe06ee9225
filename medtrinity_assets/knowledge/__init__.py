"""The knowledge base: corpora -> token passages -> sentence embeddings -> FAISS indexes -> per-sample context.

Pure domain code (no Dagster); ``medtrinity_assets/assets/knowledge.py`` wires it into the graph.
See README.md in this folder for the layout on disk and why the index kinds were chosen.
"""
