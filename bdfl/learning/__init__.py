"""Learning layer: data, tasks (Flower clients) and the audit rule (aggregation: :mod:`bdfl.defense`).

Imports nothing from the chain, network or peer layers. Submodules:

* :mod:`bdfl.learning.data` — offline data sets, seeded IID / Dirichlet partitioning;
* :mod:`bdfl.learning.task` — loading task modules (``clients.digits`` ...) and calling
  their ``NumPyClient``\\ s;
* :mod:`bdfl.learning.audit` — the auditor's accept/reject rule.
"""

from bdfl.learning.audit import AuditRule, AuditVerdict, audit_updates
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
    "AuditRule",
    "AuditVerdict",
    "Dataset",
    "Evaluator",
    "PeerShard",
    "Task",
    "audit_updates",
    "load_builtin",
    "load_task",
    "make_peer_shards",
    "partition_dirichlet",
    "partition_iid",
    "split_train_val",
]
