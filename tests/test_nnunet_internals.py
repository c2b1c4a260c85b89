"""The nnU-Net internals this plugin relies on beyond nnU-Net's console scripts (docs/development.md lists them).

``pyproject.toml`` admits nnunetv2 up to the next minor version only; before admitting a newer one, this file says
what changed: each check names what the plugin uses and where. Signatures are compared by parameter names, because
the plugin calls them positionally or by keyword as nnU-Net 2.8 does."""
from __future__ import annotations

import inspect
import re
from importlib.metadata import version

import pytest

NNUNET = version("nnunetv2")


def _parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def _assigned_in(function) -> set[str]:
    """The ``self.<name> = ...`` attributes a method's source assigns."""
    return set(re.findall(r"self\.(\w+)\s*=", inspect.getsource(function)))


def _trainer():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    return nnUNetTrainer


#: (what the plugin uses, where, a function returning (found, expected)).
SIGNATURES = [
    ("nnUNetTrainer.__init__ (variants keep its signature: nnU-Net records the arguments by name)",
     "training/trainer.py, demo/trainers.py",
     lambda: _parameters(_trainer().__init__), ["plans", "configuration", "fold", "dataset_json", "device"]),
    ("nnUNetTrainer.build_network_architecture (overridden; called for training and inference)",
     "training/trainer.py, nnunet_bridge.py",
     lambda: _parameters(_trainer().build_network_architecture),
     ["plans_manager", "configuration_manager", "num_input_channels", "num_output_channels",
      "enable_deep_supervision"]),
    ("nnUNetTrainer hooks the SMAFormerV2 trainer overrides", "training/trainer.py",
     lambda: {name: _parameters(getattr(_trainer(), name)) for name in (
         "configure_rotation_dummyDA_mirroring_and_inital_patch_size", "_get_deep_supervision_scales",
         "get_dataloaders", "configure_optimizers", "train_step", "on_train_epoch_start", "on_train_epoch_end",
         "save_checkpoint", "load_checkpoint", "on_train_start", "initialize", "perform_actual_validation",
         "_do_i_compile", "set_deep_supervision_enabled")},
     {"configure_rotation_dummyDA_mirroring_and_inital_patch_size": [], "_get_deep_supervision_scales": [],
      "get_dataloaders": [], "configure_optimizers": [], "train_step": ["batch"], "on_train_epoch_start": [],
      "on_train_epoch_end": ["train_outputs"], "save_checkpoint": ["filename"],
      "load_checkpoint": ["filename_or_checkpoint"], "on_train_start": [], "initialize": [],
      "perform_actual_validation": ["save_probabilities"], "_do_i_compile": [], "set_deep_supervision_enabled": [
          "enabled"]}),
    ("ExperimentPlanner.__init__ and get_plans_for_configuration (called positionally)",
     "whole_slice/configuration.py",
     lambda: (_parameters(_planner().__init__)[:4], _parameters(_planner().get_plans_for_configuration)),
     (["dataset_name_or_id", "gpu_memory_target_in_gb", "preprocessor_name", "plans_name"],
      ["spacing", "median_shape", "data_identifier", "approximate_n_voxels_dataset", "_cache"])),
    ("nnUNetDataLoader.get_bbox (overridden by the whole-slice loader)", "whole_slice/loader.py",
     lambda: _parameters(_loader().get_bbox),
     ["data_shape", "force_fg", "class_locations", "overwrite_class", "verbose"]),
    ("get_network_from_plans", "nnunet_bridge.py",
     lambda: _parameters(_import("nnunetv2.utilities.get_network_from_plans", "get_network_from_plans"))[:5],
     ["arch_class_name", "arch_kwargs", "arch_kwargs_req_import", "input_channels", "output_channels"]),
    ("get_trainer_from_args", "speed/scale_worker.py, tests",
     lambda: _parameters(_import("nnunetv2.run.run_training", "get_trainer_from_args"))[:4],
     ["dataset_name_or_id", "configuration", "fold", "trainer_name"]),
    ("nnUNetPredictor (in-process inference timing)", "comparison/model_facts.py",
     lambda: (_parameters(_predictor().__init__)[:5], _parameters(_predictor().initialize_from_trained_model_folder),
              _parameters(_predictor().predict_from_files_sequential)[:4]),
     (["tile_step_size", "use_gaussian", "use_mirroring", "perform_everything_on_device", "device"],
      ["model_training_output_dir", "use_folds", "checkpoint_name"],
      ["list_of_lists_or_source_folder", "output_folder_or_list_of_truncated_output_files", "save_probabilities",
       "overwrite"])),
    ("compute_steps_for_sliding_window", "speed/scale.py",
     lambda: _parameters(_import("nnunetv2.inference.sliding_window_prediction", "compute_steps_for_sliding_window")),
     ["image_size", "tile_size", "tile_step_size"]),
]


def _import(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


def _planner():
    return _import("nnunetv2.experiment_planning.experiment_planners.default_experiment_planner", "ExperimentPlanner")


def _loader():
    return _import("nnunetv2.training.dataloading.data_loader", "nnUNetDataLoader")


def _predictor():
    return _import("nnunetv2.inference.predict_from_raw_data", "nnUNetPredictor")


@pytest.mark.parametrize("what, where, found, expected", SIGNATURES, ids=[s[0].split(" ")[0] for s in SIGNATURES])
def test_signatures(what, where, found, expected):
    assert found() == expected, (f"nnunetv2 {NNUNET} changed {what}, which {where} relies on: "
                                 f"expected {expected}, found {found()}")


def test_trainer_attributes_set_in_init():
    """Attributes the trainer and its variants read or set after ``nnUNetTrainer.__init__``."""
    used = {"num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch", "initial_lr", "weight_decay",
            "grad_scaler", "enable_deep_supervision", "was_initialized", "is_ddp", "local_rank", "device",
            "configuration_manager", "plans_manager", "dataset_json", "output_folder", "output_folder_base",
            "inference_allowed_mirroring_axes", "my_init_kwargs", "logger", "network", "optimizer"}
    missing = used - _assigned_in(_trainer().__init__)
    assert not missing, (f"nnunetv2 {NNUNET}: nnUNetTrainer.__init__ no longer sets {sorted(missing)}, which "
                         "training/trainer.py and demo/trainers.py read or overwrite")


def test_the_2d_loader_is_built_from_a_module_level_name():
    """The whole-slice loader replaces ``nnUNetDataLoader`` in the trainer's module while ``get_dataloaders`` runs:
    that works only while the module imports the class by that name and the method builds it from there."""
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module

    assert trainer_module.nnUNetDataLoader is _loader(), (
        f"nnunetv2 {NNUNET}: nnUNetTrainer's module no longer holds nnUNetDataLoader, which whole_slice/loader.py "
        "replaces there")
    assert "nnUNetDataLoader(" in inspect.getsource(_trainer().get_dataloaders), (
        f"nnunetv2 {NNUNET}: nnUNetTrainer.get_dataloaders no longer builds nnUNetDataLoader by name; "
        "whole_slice/loader.py needs another way in")
    assert {"need_to_pad", "patch_size"} <= _assigned_in(_loader().__init__), (
        f"nnunetv2 {NNUNET}: nnUNetDataLoader no longer sets need_to_pad / patch_size, which whole_slice/loader.py "
        "reads")


def test_plans_and_checkpoint_fields():
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

    plans_used = {"available_configurations", "get_configuration", "get_label_manager", "experiment_planner_class",
                  "experiment_planner_name", "plans_name", "plans"}
    missing = {name for name in plans_used if not hasattr(PlansManager, name)} - _assigned_in(PlansManager.__init__)
    assert not missing, f"nnunetv2 {NNUNET}: PlansManager lost {sorted(missing)} (nnunet_bridge.py, whole_slice/)"
    configuration_used = {"patch_size", "spacing", "median_image_size_in_voxels", "preprocessor_class",
                          "preprocessor_name", "network_arch_class_name", "network_arch_init_kwargs",
                          "network_arch_init_kwargs_req_import", "data_identifier", "batch_size"}
    missing = {name for name in configuration_used if not hasattr(ConfigurationManager, name)}
    assert not missing and "configuration" in _assigned_in(ConfigurationManager.__init__), (
        f"nnunetv2 {NNUNET}: ConfigurationManager lost {sorted(missing) or 'configuration'} (training/trainer.py, "
        "whole_slice/, nnunet_bridge.py)")
    saved = inspect.getsource(_trainer().save_checkpoint)
    for key in ("network_weights", "logging", "init_args", "trainer_name"):
        assert f"'{key}'" in saved or f'"{key}"' in saved, (
            f"nnunetv2 {NNUNET}: checkpoints no longer hold {key!r}, which model_folder.py and comparison/ read")


def test_modules_the_plugin_imports():
    """Classes imported by module path: the variants' bases and the losses the network benchmark trains with."""
    for module, name in [
        ("nnunetv2.training.nnUNetTrainer.variants.benchmarking.nnUNetTrainerBenchmark_5epochs",
         "nnUNetTrainerBenchmark_5epochs"),
        ("nnunetv2.training.nnUNetTrainer.variants.benchmarking.nnUNetTrainerBenchmark_5epochs_noDataLoading",
         "nnUNetTrainerBenchmark_5epochs_noDataLoading"),
        ("nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam", "nnUNetTrainerAdam"),
        ("nnunetv2.training.loss.compound_losses", "DC_and_CE_loss"),
        ("nnunetv2.training.loss.deep_supervision", "DeepSupervisionWrapper"),
        ("nnunetv2.training.loss.dice", "MemoryEfficientSoftDiceLoss"),
        ("nnunetv2.utilities.find_objects", "recursive_find_trainer_class_by_name"),
        ("nnunetv2.utilities.label_handling.label_handling", "determine_num_input_channels"),
        ("nnunetv2.utilities.dataset_name_id_conversion", "maybe_convert_to_dataset_name"),
        ("nnunetv2.utilities.utils", "get_filenames_of_train_images_and_targets"),
        ("nnunetv2.utilities.utils", "create_lists_from_splitted_dataset_folder"),
    ]:
        try:
            _import(module, name)
        except (ImportError, AttributeError) as err:
            pytest.fail(f"nnunetv2 {NNUNET}: {module}.{name} is gone ({err}); the plugin imports it")
