"""BDFL: blockchain-audited decentralized federated learning."""

import importlib
from types import ModuleType

__version__ = "0.1.0"

#: Subpackages reachable as attributes after a bare ``import bdfl`` (``bdfl.learning.data.load_digits()``),
#: imported on first use: ``import bdfl`` itself stays instant (the CLI's start-up).
SUBPACKAGES = frozenset({"attacks", "chain", "config", "defense", "errors", "experiment", "learning", "net", "peer",
                         "plugins", "policy", "types"})


def __getattr__(name: str) -> ModuleType:
    if name in SUBPACKAGES:
        return importlib.import_module(f"bdfl.{name}")
    raise AttributeError(f"module 'bdfl' has no attribute {name!r}")
