"""Description generation: facts (image, ROIs, knowledge) -> five MedTrinity attributes + one paragraph.

- ``records``: the facts, requests and results (the ``triplets`` schema is in ``medtrinity_assets.tables``);
- ``inputs``: upstream table rows -> facts (read defensively);
- ``coarse_caption``: metadata as one sentence + fields;
- ``prompt`` (+ ``prompts/``): the versioned template, its answer schema, the ROI overlay;
- ``consistency``: which sides / organs / modalities / intensities a text names that the facts do not;
- ``answer``: a model's reply -> attributes, or the reason it cannot be used;
- ``cache``: answers already paid for;
- ``backends``: ``grounded`` (offline composer), ``openai`` (any chat-completions server), ``transformers``;
- ``run``: one partition's rows and counts.
"""
