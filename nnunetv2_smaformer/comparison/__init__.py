"""Trained models side by side (``smaformer compare`` and the demo's report).

* :mod:`.compare` - :func:`~.compare.compare` on a :class:`~.compare.CompareConfig`: the orchestration;
* :mod:`.model_folder` - reading model folders, checkpoints, training logs and timing files;
* :mod:`.model_facts` - measuring the trained networks and their inference;
* :mod:`.report` - ``report.md`` and the per-organ DSC chart.

The speed measurements it calls (the network side-by-side, GMAC counting) live in :mod:`nnunetv2_smaformer.benchmark`.
"""
