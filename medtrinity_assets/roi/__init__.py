"""ROI stage, pure (no Dagster): images -> regions of interest with facts.

- (schema: ``medtrinity_assets.tables``)        - ``ground_truth``: label maps / boxes -> candidates.
- ``registry``: models.yaml -> versions, digests. - ``expert``: load models safely, run them -> candidates.
- ``anatomy``: built-in CT/grey anatomy expert.   - ``lesion_model``: train the built-in lesion U-Net.
- ``components`` / ``rle``: components, COCO RLE. - ``facts``: geometry and intensities -> fields.
- ``build``: one images partition -> ROI rows.    - ``overlay``: preview outlines for the UI.
"""
