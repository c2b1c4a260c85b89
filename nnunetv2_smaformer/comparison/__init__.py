"""Trained models side by side (``smaformer compare`` and the demo's report).

* :mod:`.compare` - :func:`~.compare.compare` on a :class:`~.compare.CompareConfig`: the orchestration;
* :mod:`.model_facts` - measuring the trained networks and their inference;
* :mod:`.paired` - paired differences, bootstrap intervals, Wilcoxon p;
* :mod:`.report` - ``report.md`` and the per-organ DSC chart.

Model folders are read by :mod:`nnunetv2_smaformer.model_folder`; the network side-by-side it runs is
:mod:`nnunetv2_smaformer.speed.side_by_side`.
"""
