"""SMAFormerV2's total stride: patch embedding 4, then three patch mergings of 2. Every input side must be a
multiple of it. A module of its own, free of torch, so that commands can check sizes before building anything."""
NETWORK_STRIDE = 32


def round_up_to_stride(side: int) -> int:
    """The smallest multiple of :data:`NETWORK_STRIDE` that is at least ``side``."""
    return -(-int(side) // NETWORK_STRIDE) * NETWORK_STRIDE
