"""Convert TransUNet's Synapse release (train_npz/, test_vol_h5/, lists) into nnU-Net's DatasetID_Synapse.

Thin wrapper around ``smaformer convert-synapse SRC -d ID --format transunet``; see
docs/conversion.md (intensities go back to HU; the spacing is a documented constant). Example::

    export nnUNet_raw=... nnUNet_preprocessed=... nnUNet_results=...
    python dataset_conversion/Dataset_Synapse_from_TransUNet.py /data/Synapse -d 201 \\
        --lists /code/TransUNet/lists/lists_Synapse
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from nnunetv2_smaformer.conversion.converter import convert_synapse
from nnunetv2_smaformer.conversion.synapse import TRANSUNET_DEFAULT_SPACING
from nnunetv2_smaformer.errors import ConversionError


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="folder holding train_npz/ and test_vol_h5/")
    parser.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                        help=f"voxel spacing in mm (default {' '.join(map(str, TRANSUNET_DEFAULT_SPACING))})")
    parser.add_argument("--lists", default=None, help="folder with train.txt and test_vol.txt")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DatasetID_Synapse")
    parser.add_argument("--require-all", action="store_true", help="fail unless all 30 cases are present")
    parser.add_argument("-np", "--num-processes", type=int, default=None, help="worker processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        convert_synapse(args.src, args.dataset_id, fmt="transunet", overwrite=args.overwrite, spacing=args.spacing,
                        num_processes=args.num_processes, require_all=args.require_all, lists_dir=args.lists)
    except ConversionError as err:
        logging.getLogger("smaformer").error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
