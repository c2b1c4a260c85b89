"""Facts of ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017; cardiac cine-MRI) as this project converts it.

A leaf module (standard library only), shared by the conversion and the command line.

* Cases: one per volume, ``patientNNN_frame0K`` (each patient's end-diastole and end-systole frames).
* Labels: 1 right ventricle, 2 myocardium, 3 left ventricle.
* Split: SSL4MIS's lists (70 training, 10 validation, 20 test patients in the release); training and validation
  patients are cross-validated in 5 folds grouped by patient, the test patients held out.
* Spacing: the SSL4MIS h5 files store none, so one is assumed for every volume.
"""
from __future__ import annotations

DATASET_NAME = "ACDC"
LABELS: dict[str, int] = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
#: nnU-Net channel name: anything but "CT" is z-scored per image.
CHANNEL_NAME = "cineMRI"
#: Spacing (z, y, x) in mm given to every volume: ACDC's typical 10 mm between short-axis slices (most of its cases)
#: and about 1.5 mm in-plane (the release ranges over about 1.37-1.68 mm).
DEFAULT_SPACING_ZYX: tuple[float, float, float] = (10.0, 1.5, 1.5)
#: SSL4MIS's lists of volume ids.
LISTS = ("train.list", "val.list", "test.list")
NUM_FOLDS = 5
#: nnU-Net's own seed for its 5-fold split (``generate_crossval_split``), used here on the patients.
FOLD_SEED = 12345
