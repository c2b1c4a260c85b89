"""Convert the BTCV raw release (RawData/Training/img, label) into nnU-Net's DatasetID_Synapse.

Same as ``smaformer convert-synapse SRC -d ID --format btcv`` (all its options apply); see
docs/conversion.md. Example::

    export nnUNet_raw=... nnUNet_preprocessed=... nnUNet_results=...
    python dataset_conversion/Dataset_Synapse_from_BTCV.py /data/Abdomen -d 201
"""
import sys

from nnunetv2_smaformer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["convert-synapse", "--format", "btcv", *sys.argv[1:]]))
