"""Learning layer: data, tasks (Flower clients), aggregation and the audit rule.

Imports nothing from the chain, network or peer layers. Submodules:

* :mod:`bdfl.learning.data` — offline data sets, seeded IID / Dirichlet partitioning;
* :mod:`bdfl.learning.task` — loading task modules (``clients.digits`` ...) and calling
  their ``NumPyClient``\\ s;
* :mod:`bdfl.learning.aggregation` — FedAvg / Krum / median / trimmed mean / "bdfl";
* :mod:`bdfl.learning.robust_aggregation` — geometric median, centered clipping with
  bucketing, NNM + trimmed mean (registered in ``AGGREGATORS`` on import of this package);
* :mod:`bdfl.learning.audit` — the auditor's accept/reject rule.
"""

from bdfl.learning.aggregation import AGGREGATORS, aggregate, validate_aggregator
from bdfl.learning import robust_aggregation  # noqa: F401, I001 - registers geometric_median, centered_clipping, nnm_trimmed_mean
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
    "AGGREGATORS",
    "AuditRule",
    "AuditVerdict",
    "Dataset",
    "Evaluator",
    "PeerShard",
    "Task",
    "aggregate",
    "audit_updates",
    "load_builtin",
    "load_task",
    "make_peer_shards",
    "partition_dirichlet",
    "partition_iid",
    "split_train_val",
    "validate_aggregator",
]
