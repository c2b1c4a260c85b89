"""Dataset conversion into nnU-Net v2's raw format: Synapse (BTCV), ACDC (SSL4MIS layout) and a synthetic phantom.

* :mod:`.nnunet_dataset` - the plan / build / publish steps every converter uses (nothing left behind on failure).
* :mod:`.converter` - ``convert_synapse`` (``smaformer convert-synapse``).
* :mod:`.acdc_ssl4mis` - ``convert_acdc`` (``smaformer convert-acdc``): ACDC from the SSL4MIS h5 layout.
* :mod:`.sources` - which layout a folder holds; :mod:`.btcv` and :mod:`.transunet` - each layout's
  scan, reading and conversion; :mod:`.cases` - what they share (one folder scan, label checks).
* :mod:`.synapse_raw` - the converted dataset's labels, intensities and ``dataset.json``; the benchmark's facts
  (labels, split, geometry) are :mod:`nnunetv2_smaformer.synapse`.
* :mod:`.phantom` - synthetic data in either source layout; :mod:`.phantom_dataset` - a phantom converted into an
  nnU-Net dataset.

Nothing is imported here; submodules import their heavy dependencies lazily.
"""
