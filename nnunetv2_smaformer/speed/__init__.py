"""Speed measurements, each side by side in one run (orchestration: it builds on the library modules, nothing below
it imports it).

* :mod:`.step_timing` - training-step and inference timing of networks (``smaformer benchmark-network``);
* :mod:`.reference` - the authors' network, built from a file the user gives;
* :mod:`.side_by_side` - SMAFormerV2 against the stock 2D network of a dataset's plans, each in a fresh process;
* :mod:`.scale` and :mod:`.scale_worker` - ``smaformer benchmark-scale`` at Synapse's geometry: the settings and
  the orchestration, and the worker that measures one method's training in a fresh process; :mod:`.scale_report`
  its Markdown page.

What they share with the rest of the package lives at the package's top level: :mod:`~nnunetv2_smaformer.
nnunet_bridge` (trainer lookup, network builds), :mod:`~nnunetv2_smaformer.forward_cost` (GMACs),
:mod:`~nnunetv2_smaformer.machine` (the machine a figure was measured on), :mod:`~nnunetv2_smaformer.markdown`.
"""
