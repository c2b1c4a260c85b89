"""Convert TransUNet's Synapse release (train_npz/, test_vol_h5/, lists) into nnU-Net's DatasetID_Synapse.

Same as ``smaformer convert-synapse SRC -d ID --format transunet [--spacing X Y Z] [--lists DIR]``
(all its options apply); see docs/conversion.md. Example::

    export nnUNet_raw=... nnUNet_preprocessed=... nnUNet_results=...
    python dataset_conversion/Dataset_Synapse_from_TransUNet.py /data/project_TransUNet/data/Synapse -d 202
"""
import sys

from nnunetv2_smaformer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["convert-synapse", "--format", "transunet", *sys.argv[1:]]))
