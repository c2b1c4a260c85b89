"""Synapse evaluation (per-organ DSC / HD95) and qualitative overlays.

* :mod:`.metrics` - the per-case rule, Dice and HD95 (numpy/scipy only, medpy-identical values).
* :mod:`.evaluate` - folder matching, parallel evaluation, JSON/CSV/Markdown outputs
  (``smaformer evaluate``).
* :mod:`.overlays` - PNGs of image, ground truth and prediction per slice (``smaformer overlay``).

Nothing is imported here so that ``import nnunetv2_smaformer.evaluation`` stays free of heavy
dependencies; import the submodules directly.
"""
