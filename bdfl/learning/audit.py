"""The auditor's accept/reject rule.

An auditor judges each candidate model (another peer's trained parameters) only by
calling ``client.evaluate`` on its *own* local validation split — the same call for
any ``NumPyClient``. It compares the candidate's score with two bars:

* the auditor's **reference** model (``reference_params``: the auditor's own model
  after this round's local training), and
* the **median** score of all candidates it audits this round (robust as long as
  fewer than half of them are bad).

With ``reference="own_or_median"`` (default) a candidate is **accepted if it is
within ``margin`` of either bar**, i.e. rejected only when it is clearly worse than
both. Under non-IID data honest models differ a lot on a given auditor's skewed
validation set; the median bar absorbs that spread, while the own-model bar keeps
the rule working when attackers are the majority of one auditor's candidates
(the median is then poisoned but the auditor's own model is not).

Metrics:

* ``"accuracy"`` (higher is better): accept iff ``acc >= bar - margin`` for some bar.
* ``"loss"`` (lower is better): accept iff ``loss <= bar + loss_margin`` for some bar
  (cross-entropy in nats; an additive margin works across training stages, where a
  relative one does not: honest losses shrink as training proceeds, garbage stays high).
* ``"accuracy_and_loss"`` (default): accept iff the accuracy test *and* the loss test
  both pass — accuracy alone misses noise-like models early in training (every model
  is near chance then), loss alone misses confident label-flipped models.

Candidates whose parameters contain NaN/Inf or whose arrays do not match the
reference's shapes are rejected without being evaluated.

Defaults (``margin = 0.4`` accuracy, ``loss_margin = 2.5`` nats) were measured with
``experiments/audit_rule_eval.py`` (digits, 20 peers, Dirichlet 0.5, 30 % attackers):
honest false rejections <= 2.8 % per vote without attack and under label-flip,
sign-flip and noise attackers; detection rates and limits are in docs/learning.md.
An auditor needs at least ``min_candidates`` (3) candidates for the median bar;
below that only the own-model bar applies, which rejects many honest non-IID models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bdfl.errors import BDFLError
from bdfl.learning.task import EvalResult, evaluate_client

NDArrays = list[np.ndarray]

__all__ = ["AuditRule", "AuditVerdict", "audit_updates", "evaluate_candidates", "judge"]

Metric = Literal["accuracy", "loss", "accuracy_and_loss"]
Reference = Literal["own", "median", "own_or_median"]


@dataclass(frozen=True)
class AuditRule:
    """Configuration of the accept/reject rule (see the module docstring).

    metric: "accuracy" | "loss" | "accuracy_and_loss".
    margin: tolerance of the accuracy test, in accuracy points (0.4 = 40 points).
    loss_margin: tolerance of the loss test, in nats of cross-entropy added to the bar.
    reference: which bars count: "own", "median", or "own_or_median".
    min_candidates: fewest candidates for the median bar to be used (else "own" only).
    """

    metric: Metric = "accuracy_and_loss"
    margin: float = 0.4
    loss_margin: float = 2.5
    reference: Reference = "own_or_median"
    min_candidates: int = 3

    def __post_init__(self) -> None:
        if self.metric not in ("accuracy", "loss", "accuracy_and_loss"):
            raise BDFLError(
                f"audit rule: metric must be 'accuracy', 'loss' or 'accuracy_and_loss', got {self.metric!r}"
            )
        if self.reference not in ("own", "median", "own_or_median"):
            raise BDFLError(
                f"audit rule: reference must be 'own', 'median' or 'own_or_median', got {self.reference!r}"
            )
        if not (isinstance(self.margin, (int, float)) and 0 <= self.margin <= 1):
            raise BDFLError(f"audit rule: margin must lie in [0, 1], got {self.margin!r}")
        if not (isinstance(self.loss_margin, (int, float)) and 0 <= self.loss_margin and math.isfinite(self.loss_margin)):
            raise BDFLError(f"audit rule: loss_margin must be a finite number >= 0, got {self.loss_margin!r}")
        if isinstance(self.min_candidates, bool) or not isinstance(self.min_candidates, int) or self.min_candidates < 1:
            raise BDFLError(f"audit rule: min_candidates must be an integer >= 1, got {self.min_candidates!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AuditRule:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise BDFLError(
                f"audit rule: unknown field(s) {', '.join(unknown)}",
                fix=f"fields: {', '.join(cls.__dataclass_fields__)}",
            )
        return cls(**values)


@dataclass(frozen=True)
class AuditVerdict:
    """One auditor's judgement of one candidate.

    ``score`` / ``reference_score`` / ``median_score`` are accuracies (or losses for
    ``metric="loss"``); ``loss`` etc. are always the losses. NaN where not computed.
    """

    accept: bool
    score: float
    reference_score: float
    median_score: float
    reason: str
    loss: float = math.nan
    reference_loss: float = math.nan
    median_loss: float = math.nan


def _finite_and_matching(candidate: Any, reference: NDArrays) -> str | None:
    if not isinstance(candidate, (list, tuple)) or len(candidate) != len(reference):
        return "parameter count differs from the auditor's model"
    for a, b in zip(candidate, reference):
        a = np.asarray(a)
        if a.shape != np.shape(b):
            return f"array shape {a.shape} differs from the auditor's {np.shape(b)}"
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            return "parameters contain NaN or Inf"
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            return f"non-numeric parameter dtype {a.dtype}"
    return None


def _eval(client: Any, params: NDArrays) -> EvalResult:
    res = evaluate_client(client, params)
    if res.num_examples <= 0:
        raise BDFLError(
            "the auditor's client evaluated on 0 validation samples",
            fix="give every peer a non-empty validation split (val_fraction > 0)",
        )
    return res


def evaluate_candidates(
    client: Any, reference_params: NDArrays, candidates: Sequence[NDArrays]
) -> tuple[EvalResult, list[EvalResult | str]]:
    """Evaluate the reference and every candidate on the auditor's validation data.

    Returns (reference result, per-candidate result or the reason it was not evaluated).
    """
    ref = _eval(client, reference_params)
    out: list[EvalResult | str] = []
    for cand in candidates:
        problem = _finite_and_matching(cand, reference_params)
        if problem is not None:
            out.append(problem)
            continue
        res = _eval(client, list(cand))
        if not math.isfinite(res.loss):
            out.append("evaluation loss is not finite")
            continue
        out.append(res)
    return ref, out


def judge(rule: AuditRule, reference: EvalResult, results: Sequence[EvalResult | str]) -> list[AuditVerdict]:
    """Apply ``rule`` to already-computed evaluation results (see :func:`evaluate_candidates`)."""
    needs_acc = rule.metric != "loss"
    if needs_acc and not math.isfinite(reference.accuracy):
        raise BDFLError(
            "the task's evaluate() reports no finite 'accuracy' metric, which the audit rule needs",
            fix="return {'accuracy': ...} from NumPyClient.evaluate, or use the audit metric 'loss'",
        )
    med_acc = med_loss = math.nan
    use_median = rule.reference != "own" and len(results) >= rule.min_candidates
    if use_median:
        # A candidate that could not be evaluated counts as the worst possible score.
        med_acc = float(np.median([r.accuracy if isinstance(r, EvalResult) else -math.inf for r in results]))
        med_loss = float(np.median([r.loss if isinstance(r, EvalResult) else math.inf for r in results]))
        if not (math.isfinite(med_loss) and (math.isfinite(med_acc) or not needs_acc)):
            use_median = False  # most candidates are invalid: the median says nothing
            med_acc = med_loss = math.nan
    use_own = rule.reference != "median" or not use_median
    acc_bars = ([reference.accuracy] if use_own else []) + ([med_acc] if use_median else [])
    loss_bars = ([reference.loss] if use_own else []) + ([med_loss] if use_median else [])
    # Accept when within the margin of EITHER bar: the lower accuracy bar, the higher loss bar.
    acc_bar = min(acc_bars)
    loss_bar = max(loss_bars)

    verdicts = []
    for r in results:
        if not isinstance(r, EvalResult):
            verdicts.append(
                AuditVerdict(False, math.nan, reference.accuracy, med_acc, r, math.nan, reference.loss, med_loss)
            )
            continue
        reasons = []
        if needs_acc and not r.accuracy >= acc_bar - rule.margin:
            reasons.append(f"accuracy {r.accuracy:.3f} < bar {acc_bar:.3f} - margin {rule.margin:g}")
        if rule.metric != "accuracy" and r.loss > loss_bar + rule.loss_margin:
            reasons.append(f"loss {r.loss:.3f} > bar {loss_bar:.3f} + margin {rule.loss_margin:g}")
        if rule.metric == "loss":
            score, ref_score, med_score = r.loss, reference.loss, med_loss
        else:
            score, ref_score, med_score = r.accuracy, reference.accuracy, med_acc
        verdicts.append(
            AuditVerdict(
                accept=not reasons,
                score=score,
                reference_score=ref_score,
                median_score=med_score,
                reason="; ".join(reasons) if reasons else "within margin",
                loss=r.loss,
                reference_loss=reference.loss,
                median_loss=med_loss,
            )
        )
    return verdicts


def audit_updates(
    client: Any,
    reference_params: NDArrays,
    candidates: Sequence[NDArrays],
    rule: AuditRule | None = None,
) -> list[AuditVerdict]:
    """Judge every candidate model with ``rule``, using only ``client.evaluate`` on the
    auditor's own validation data. Returns one :class:`AuditVerdict` per candidate, in order."""
    rule = rule or AuditRule()
    reference, results = evaluate_candidates(client, reference_params, candidates)
    return judge(rule, reference, results)
