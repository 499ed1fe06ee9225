"""Description generation: facts (image, ROIs, knowledge) -> five MedTrinity attributes + one paragraph.

- ``sample_facts``: what a description may state (image facts, the ROI stage's ``RoiFacts``, passages);
- ``results``: what a backend is asked and answers (the ``triplets`` schema is in ``medtrinity_assets.tables``);
- ``inputs``: upstream table rows -> facts;
- ``coarse_caption``: metadata as one sentence + fields;
- ``prompt`` (+ ``prompts/``): the versioned template, its answer schema, the ROI overlay;
- ``answer``: a model's reply -> attributes, or the reason it cannot be used (judged by
  :mod:`medtrinity_assets.quality.consistency`, the same scorer as the blocking gate);
- ``cache``: answers already paid for;
- ``backends``: ``grounded`` (offline composer), ``openai`` (any chat-completions server), ``transformers``;
- ``run``: one partition's rows and counts.
"""
