"""What this project asks of nnU-Net to build networks, in one place: find a trainer class by name, read input and
output channels and the patch from plans, build a trainer's or the plans' network, and switch deep supervision the
way nnU-Net's trainer does. nnU-Net's prints go to the debug log (:func:`~nnunetv2_smaformer.quiet.quiet`).

torch and nnU-Net are imported inside the functions, so importing this module stays cheap.
"""
from __future__ import annotations

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.nnunet_env import temporary_environ
from nnunetv2_smaformer.quiet import quiet


def find_trainer_class(trainer_name: str) -> type:
    """nnU-Net's trainer lookup by name (nnU-Net's folder, then ``nnUNet_extTrainer`` with this
    package's trainer folder added for the lookup)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        with temporary_environ(), quiet("trainer lookup"):
            return recursive_find_trainer_class_by_name(trainer_name)
    except (RuntimeError, AssertionError) as err:
        raise SMAFormerError(f"trainer {trainer_name}: {err}") from err


def _managers(plans: dict, configuration: str):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    if configuration not in plans_manager.available_configurations:
        raise SMAFormerError(f"plans {plans_manager.plans_name} have no configuration '{configuration}' "
                             f"(available: {', '.join(plans_manager.available_configurations)})")
    return plans_manager, plans_manager.get_configuration(configuration)


def input_output_channels(plans: dict, configuration: str, dataset_json: dict) -> tuple[int, int]:
    """``(input channels, segmentation heads)`` as nnU-Net derives them for ``configuration``."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels

    plans_manager, configuration_manager = _managers(plans, configuration)
    n_in = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    n_out = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    return int(n_in), int(n_out)


def patch_size(plans: dict, configuration: str) -> list[int]:
    """The patch size of ``configuration`` (inherited settings resolved as nnU-Net resolves them)."""
    _, configuration_manager = _managers(plans, configuration)
    return [int(s) for s in configuration_manager.patch_size]


def build_trainer_network(trainer_class: type, plans: dict, configuration: str, dataset_json: dict,
                          deep_supervision: bool):
    """The network ``trainer_class.build_network_architecture`` builds, as nnU-Net 2.8 calls it for
    training (``deep_supervision=True``) and inference (``False``)."""
    plans_manager, configuration_manager = _managers(plans, configuration)
    n_in, n_out = input_output_channels(plans, configuration, dataset_json)
    with quiet("build_network_architecture"):
        return trainer_class.build_network_architecture(
            plans_manager, configuration_manager, n_in, n_out, enable_deep_supervision=deep_supervision)


def build_plans_network(plans: dict, configuration: str, dataset_json: dict, deep_supervision: bool):
    """Stock nnU-Net's network of ``configuration``: the architecture the plans name, via nnU-Net's
    ``get_network_from_plans``."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    _, configuration_manager = _managers(plans, configuration)
    n_in, n_out = input_output_channels(plans, configuration, dataset_json)
    return get_network_from_plans(
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        n_in, n_out, deep_supervision=deep_supervision)


def set_deep_supervision(network, enabled: bool) -> None:
    """Switch deep supervision the way nnU-Net's trainer does (``decoder.deep_supervision``); a network without that
    switch (a custom architecture) is left as it is."""
    decoder = getattr(network, "decoder", None)
    if decoder is not None and hasattr(decoder, "deep_supervision"):
        decoder.deep_supervision = enabled
