"""The original SMAFormerV2's (TransUNet's) whole-slice protocol as an nnU-Net configuration, in one place.

* :mod:`.plans` - the configuration's name, marker and the pure plan readers (the trainer's and the planner's);
* :mod:`.configuration` - ``smaformer add-configuration``: plan the configuration with nnU-Net's planner and
  preprocess its data;
* :mod:`.loader` - whole-slice sampling while training on it.
"""
