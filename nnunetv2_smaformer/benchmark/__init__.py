"""Speed measurements, each side by side in one run.

* :mod:`.network` - training-step and inference timing of networks (``smaformer benchmark-network``), GMAC counts;
* :mod:`.reference` - the authors' network, built from a file the user gives;
* :mod:`.side_by_side` - SMAFormerV2 against the stock 2D network of a dataset's plans, each in a fresh process;
* :mod:`.scale` and :mod:`.scale_worker` - ``smaformer benchmark-scale`` at Synapse's geometry: the settings and
  the orchestration, and the worker that measures one method's training in a fresh process;
* :mod:`.markdown` - the Markdown tables of the benchmarks' reports;
* :mod:`.nnunet_bridge` - what the project asks of nnU-Net: trainer lookup, channels from plans, building
  networks, silencing nnU-Net's prints.
"""
