"""``adaptive``: the audit-aware adaptive attacker (issue 22).

Threat model: the audit policy is public (it is part of the deployment), so the attacker
runs **its own copy of the deployed audit rule**, with its own data standing in for the
auditors' (its validation split, through its own client's ``evaluate``), and sends the
most harmful update that copy accepts. In each active round it

1. builds a harmful direction ``d`` from what it knows (``direction``):

   * ``"sign_flip"`` — its honest move reversed: ``crafted(s) = trained - s * (trained - reference)``
     (``s = 1``: no move at all, ``s = 2``: the plain sign flip, larger: a boosted one);
   * ``"alie"`` — ALIE's direction (Baruch et al. 2019): ``crafted(s) = mean - s * std`` of the
     benign models it knows (``s`` plays ALIE's ``z``);
   * ``"backdoor"`` — towards its backdoored model: it trains on a shard poisoned like
     :class:`bdfl.attacks.backdoor.Backdoor` (the ``target_label`` / ``poison_fraction`` /
     ``trigger_size`` / ``trigger_value`` parameters), and ``crafted(s) = reference + s * (trained -
     reference)`` (``s = 1``: the plain backdoor, larger: model replacement, smaller: a damped one);

2. searches, by bisection on ``s`` in ``[0, max_scale]`` (``steps`` halvings, after trying
   ``max_scale`` itself), the largest step whose crafted model its copy of the rule accepts
   (the stand-in auditor's trained model: its own, or for ``backdoor`` an honest one it knows)
   among the other candidates it knows (``ctx.honest_updates``, the omniscient assumption of
   ALIE/IPM, else the models it received last round), measured from its own start of the round
   (what auditors rebuild from the chain), with its previous submitted move as the consistency
   test's earlier move and each candidate's claimed local steps (from the sample counts on
   chain: the no-work test's small-shard credit);

3. submits ``crafted(s*)``. When not even the smallest step passes it sends ``crafted(0)``
   (for ``sign_flip`` and ``backdoor``: its trained model; for ``alie``: the benign mean).

The search assumes acceptance is monotone in ``s`` (as the halving search of Shejwalkar &
Houmansadr, NDSS'21, does); it is not always (``sign_flip`` passes again beyond the
no-work test's band around ``s = 1`` only if the direction test stands down), so ``s*`` is a
largest *found* step, not a proven maximum.

The rule is the deployed policy: the runner hands the attacker its ``[defense]`` table
(:meth:`AdaptiveAttack.know_policy`, called by ``bdfl.experiment.setup.make_attack_for``) and
its own client (:meth:`AdaptiveAttack.bind_client`, called by
:func:`bdfl.attacks.attacker_client`); without a policy the rule's defaults are used. Under a
baseline defense (no audit) the attacker still crafts against BDFL's audit policy: the
robustness table then shows what an update that passes the audit does to each aggregator.
:func:`audit_copy` is this module's only call into the audit.

Cost: one audit of ``len(candidates) + 1`` models per step (evaluations of unchanged models
are cached), about ``steps + 1`` audits per attacker and round.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bdfl.attacks import Attack, AttackContext, AttackError, NDArrays, choice, integer, number, register
from bdfl.attacks._search import benign_std, benign_vectors, unflatten
from bdfl.attacks.backdoor import CORNERS, Backdoor
from bdfl.defense.audit import AuditRule, audit_updates

DIRECTIONS = ("sign_flip", "alie", "backdoor")


def flatten(params: Sequence[np.ndarray]) -> np.ndarray:
    """A model's arrays as one float64 vector."""
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in params])


def audit_copy(
    policy: Any,
    client: Any,
    own_trained: NDArrays,
    own_start: NDArrays | None,
    candidates: Sequence[NDArrays],
    *,
    candidate_starts: Sequence[NDArrays | None] | None = None,
    candidate_past_moves: Sequence[NDArrays | None] | None = None,
    candidate_steps: Sequence[float] | None = None,
) -> list[bool]:
    """The attacker's copy of the deployed audit: accept (True) / reject per candidate.

    ``policy``: a ``[defense]`` table (its ``detectors``), an
    :class:`~bdfl.defense.audit.AuditRule`, or None (the rule's defaults). ``client`` evaluates
    on the attacker's own validation data (the stand-in for an auditor's). The only place this
    module calls the audit (``bdfl.defense.audit`` today)."""
    if policy is None:
        rule = AuditRule()
    elif isinstance(policy, AuditRule):
        rule = policy
    else:
        rule = AuditRule.from_defense(policy)
    verdicts = audit_updates(client, own_trained, list(candidates), rule, start_params=own_start,
                             candidate_starts=candidate_starts, candidate_past_moves=candidate_past_moves,
                             candidate_steps=candidate_steps)
    return [bool(v.accept) for v in verdicts]


def _digest(arrays: Sequence[Any]) -> bytes:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.digest()


class _MemoClient:
    """A client whose ``evaluate`` and ``predict`` remember results by the bytes of the
    parameters (and inputs): during the search only the crafted model changes, so the other
    candidates are evaluated and scanned once. Kept for one round (:meth:`forget`)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._seen: dict[bytes, Any] = {}

    def forget(self) -> None:
        self._seen.clear()

    def evaluate(self, parameters: NDArrays, config: dict[str, Any] | None = None) -> Any:
        key = b"e" + _digest(parameters)
        if key not in self._seen:
            self._seen[key] = self.client.evaluate(parameters, dict(config or {}))
        return self._seen[key]

    def __getattr__(self, name: str) -> Any:
        # not the batched evaluate_many / predict_many of the wrapped client: the audit then calls
        # the remembering evaluate / predict above once per candidate (bdfl.learning.task.evaluate_many)
        if name in ("client", "_seen", "evaluate_many", "predict_many"):
            raise AttributeError(name)
        attr = getattr(self.client, name)
        if name != "predict":
            return attr

        def predict(parameters: NDArrays, X: np.ndarray) -> Any:  # only where the client predicts
            key = b"p" + _digest([*parameters, X])
            if key not in self._seen:
                self._seen[key] = attr(parameters, X)
            return self._seen[key]

        return predict


def largest_passing_step(ok: Any, max_scale: float, steps: int) -> float:
    """Largest ``s`` in ``[0, max_scale]`` with ``ok(s)`` found by trying ``max_scale``, then
    bisecting ``steps`` times between the largest passing and the smallest failing step
    (assumes ``ok`` is monotone; 0 when no tried step passes)."""
    if ok(max_scale):
        return float(max_scale)
    lo, hi = 0.0, float(max_scale)
    for _ in range(steps):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


@register
class AdaptiveAttack(Attack):
    name = "adaptive"
    summary = "searches the largest harmful step (sign_flip / alie / backdoor direction) its own copy of the deployed audit accepts"
    paper = ("issue 22; search as Shejwalkar & Houmansadr 2021 (NDSS); directions: Baruch et al. 2019 (ALIE), "
             "Bagdasaryan et al. 2020 (model replacement)")
    needs_honest_updates = True
    PARAMS = {
        "direction": choice(*DIRECTIONS, default="sign_flip", doc="harmful direction searched along"),
        "max_scale": number(0, lo_open=True, default=8.0, doc="largest step tried (see the module docstring)"),
        "steps": integer(1, 30, default=7, doc="bisection halvings after max_scale fails"),
        # the backdoor direction's poisoning (as the backdoor attack's)
        "target_label": integer(0, default=0),
        "poison_fraction": number(0, 1, lo_open=True, default=0.5),
        "trigger_size": integer(1, default=2),
        "corner": choice(*CORNERS, default="bottom_right"),
        "trigger_value": number(default=1.0),
    }

    def _validate(self) -> None:
        self.policy: Any = None
        self.client: Any = None
        self.last_step: float | None = None
        self._last_move: NDArrays | None = None
        self._backdoor = Backdoor(target_label=self.target_label, poison_fraction=self.poison_fraction,
                                  trigger_size=self.trigger_size, corner=self.corner, trigger_value=self.trigger_value)

    # ---- what the runner gives it ----------------------------------------- #

    def know_policy(self, policy: Any) -> None:
        """The deployed audit policy (a ``[defense]`` table or an AuditRule): public knowledge."""
        self.policy = policy

    def bind_client(self, client: Any) -> None:
        """A client on the attacker's own data: its ``evaluate`` stands in for an auditor's."""
        self.client = _MemoClient(client)

    # ---- hooks ------------------------------------------------------------ #

    @property
    def poisons_data(self) -> bool:
        return self.direction == "backdoor"

    def poison_data(self, X, y, rng, *, num_classes=None):  # noqa: ANN001, ANN201
        if self.direction != "backdoor":
            return X, y
        return self._backdoor.poison_data(X, y, rng, num_classes=num_classes)

    @property
    def triggered_test_set(self) -> Any:
        """The backdoor direction's attack-success test set (its trigger, its target): a function
        ``(X_test, y_test) -> (X, y)``; absent (``hasattr`` False) for the other directions, so the
        runner measures no attack success for them."""
        if self.direction != "backdoor":
            raise AttributeError("attack 'adaptive': only direction 'backdoor' has a trigger")
        return self._backdoor.triggered_test_set

    def crafted(self, ctx: AttackContext, s: float) -> np.ndarray:
        """The model at step ``s`` along this attack's direction (flat float64)."""
        t, r = flatten(ctx.trained), flatten(ctx.reference)
        if self.direction == "sign_flip":
            return t - s * (t - r)
        if self.direction == "backdoor":
            return r + s * (t - r)
        benign = benign_vectors(ctx)
        return benign.mean(axis=0) - s * benign_std(benign)

    def auditor_model(self, ctx: AttackContext) -> NDArrays:
        """The trained model of the stand-in auditor: the attacker's own, which is honest for the
        sign_flip and alie directions; for backdoor (its own is backdoored) the honest model
        nearest the benign mean when it knows the honest models, else its own."""
        if self.direction != "backdoor" or not ctx.honest_updates:
            return ctx.trained
        benign = benign_vectors(ctx)
        nearest = int(np.argmin(np.linalg.norm(benign - benign.mean(axis=0), axis=1)))
        return list(ctx.honest_updates[nearest])

    def search(self, ctx: AttackContext) -> float:
        """The largest step :func:`audit_copy` accepts (see the module docstring)."""
        if self.client is None:
            raise AttackError("attack 'adaptive' needs its own client to audit with",
                              fix="build the attacker's client with bdfl.attacks.attacker_client, or call bind_client")
        others = [list(m) for m in (ctx.honest_updates or ctx.received)]
        starts = [None] * len(others) + [ctx.reference]
        past = [None] * len(others) + [self._last_move]
        # the steps each candidate claims, as the auditors see them on chain (the no-work test's
        # small-shard credit); unknown (NaN: no credit) for models received last round
        known = ctx.honest_updates and len(ctx.honest_steps) == len(others)
        steps = [*(ctx.honest_steps if known else [math.nan] * len(others)), ctx.own_steps]
        auditor = self.auditor_model(ctx)

        def ok(s: float) -> bool:
            cand = unflatten(self.crafted(ctx, s), ctx.trained)
            return audit_copy(self.policy, self.client, auditor, ctx.reference, [*others, cand],
                              candidate_starts=starts, candidate_past_moves=past, candidate_steps=steps)[-1]

        return largest_passing_step(ok, self.max_scale, self.steps)

    def poison_update(self, ctx: AttackContext) -> NDArrays:
        if self.direction == "alie" and not (ctx.honest_updates or ctx.received):
            self.last_step = 0.0  # a single model has no spread: nothing to push along
            return ctx.trained
        self.last_step = self.search(ctx)
        self.client.forget()  # next round: other models
        out = unflatten(self.crafted(ctx, self.last_step), ctx.trained)
        self._last_move = [np.asarray(o, dtype=np.float64) - np.asarray(r, dtype=np.float64)
                           for o, r in zip(out, ctx.reference)]
        return out
