"""Benchmarks and the comparison with stock nnU-Net.

* :mod:`.network` - training-step and inference timing of networks, measured side by side.
* :mod:`.side_by_side` - SMAFormerV2 against the stock 2D network of a dataset's plans, each in a fresh process.
* :mod:`.compare` - ``smaformer compare``: a short orchestration over :mod:`.model_folder` (reading
  model folders and checkpoints), :mod:`.model_facts` (measuring trained models) and :mod:`.report`
  (``report.md`` and the DSC chart).
* :mod:`.nnunet_bridge` - what the project asks of nnU-Net: trainer lookup, channels from plans,
  building networks, GMAC counting, silencing nnU-Net's prints.
"""
