"""Learning layer: data and tasks (Flower clients); aggregation and the audit rule: :mod:`bdfl.defense`.

Imports nothing from the chain, network or peer layers. Submodules:

* :mod:`bdfl.learning.data` — offline data sets, seeded IID / Dirichlet partitioning;
* :mod:`bdfl.learning.task` — loading task modules (``clients.digits`` ...) and calling
  their ``NumPyClient``\\ s;
"""

from bdfl.learning.data import (
    Dataset,
    PeerShard,
    load_builtin,
    make_peer_shards,
    partition_dirichlet,
    partition_iid,
    split_train_val,
)
from bdfl.learning.task import Evaluator, Task, load_task

__all__ = [
    "Dataset",
    "Evaluator",
    "PeerShard",
    "Task",
    "load_builtin",
    "load_task",
    "make_peer_shards",
    "partition_dirichlet",
    "partition_iid",
    "split_train_val",
]
