"""Types shared by every layer (imports nothing from bdfl)."""

from __future__ import annotations

import numpy as np

#: A model's parameters as a list of NumPy arrays, in the client's order; the same as Flower's
#: ``flwr.common.NDArrays`` (without importing Flower).
NDArrays = list[np.ndarray]

__all__ = ["NDArrays"]
