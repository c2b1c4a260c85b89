"""Dataset conversion into nnU-Net v2's raw format: Synapse (BTCV) and a synthetic phantom.

* :mod:`.converter` - ``convert_synapse`` (``smaformer convert-synapse``): plan, build, publish.
* :mod:`.sources` - which layout a folder holds; :mod:`.btcv` and :mod:`.transunet` - each layout's
  scan, reading and conversion; :mod:`.cases` - what they share (one folder scan, label checks).
* :mod:`.synapse_raw` - the converted dataset's labels, intensities and ``dataset.json``; the benchmark's facts
  (labels, split, geometry) are :mod:`nnunetv2_smaformer.synapse`.
* :mod:`.phantom` - synthetic data in either source layout; :mod:`.phantom_dataset` - a phantom converted into an
  nnU-Net dataset.

Nothing is imported here; submodules import their heavy dependencies lazily.
"""
