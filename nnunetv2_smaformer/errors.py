"""Exceptions for problems a user can fix (bad files, bad arguments).

The ``smaformer`` CLI turns any :class:`SMAFormerError` into a one-line message and exit
status 2; library callers can catch the specific subclass.
"""


class SMAFormerError(Exception):
    """Base class of all user-facing errors of this package."""


class PretrainedWeightsError(SMAFormerError):
    """A pretrained checkpoint is missing, unreadable, or not a Swin-T checkpoint."""


class ConversionError(SMAFormerError):
    """Source data for a dataset conversion is missing, inconsistent or corrupt."""


class EvaluationError(SMAFormerError):
    """Prediction or ground-truth files for an evaluation are missing or do not match."""


class ConfigurationError(SMAFormerError):
    """An nnU-Net configuration cannot be added: no such dataset or plans, a name or size that does not work, or a
    configuration of that name with other settings."""


class NonFiniteTrainingError(SMAFormerError):
    """Training produced non-finite losses or gradients for too many steps in a row, or non-finite weights."""


class ReferenceImplementationError(SMAFormerError):
    """The authors' implementation file given for a comparison is missing, cannot be imported, or cannot build its
    network."""
