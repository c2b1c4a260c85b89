"""``PathLike``: what the package's functions accept for a path (a string or any ``os.PathLike``)."""
from __future__ import annotations

import os

PathLike = str | os.PathLike
