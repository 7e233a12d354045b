"""FedProx's proximal gradient added in place (clients/common.py ``add_proximal_gradient``) is
autograd's gradient of ``mu/2 * ||w - w_start||^2`` bit for bit, and a whole fit with it equals
the loop that builds the term in the graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bdfl.learning.data import load_digits
from clients import digits, digits_wide
from clients.common import add_proximal_gradient, derive_seed, make_optimizer


def _autograd_loop(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
                   optimizer: torch.optim.Optimizer, generator: torch.Generator, mu: float) -> float:
    """The training loop before the in-place change: the term in the objective, through autograd."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    start_values = [p.detach().clone() for p in params]
    n, last = len(y), 0.0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            proximal = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start_values))
            (loss + 0.5 * mu * proximal).backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        last = total / n
    return last


@pytest.mark.parametrize("mu", [0.1, 0.37, 1.0, 10.0])
def test_in_place_gradient_is_autograds_bit_for_bit(mu: float) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 300), torch.nn.ReLU(), torch.nn.Linear(300, 10))
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    X, y = torch.randn(16, 64), torch.randint(0, 10, (16,))

    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(X), y)
    (loss + 0.5 * mu * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))).backward()
    reference = [p.grad.clone() for p in params]

    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(X), y).backward()
    add_proximal_gradient(params, start, [torch.empty_like(p) for p in params], mu)
    assert all(torch.equal(a, b) for a, b in zip(reference, (p.grad for p in params)))
    # the term is there: without it the gradients differ
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(X), y).backward()
    assert not all(torch.equal(a, p.grad) for a, p in zip(reference, params))


def test_a_parameter_outside_the_loss_gets_the_term_alone() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    p0 = torch.tensor([0.5, 0.5])
    add_proximal_gradient([p], [p0], [torch.empty(2)], 0.1)
    assert torch.allclose(p.grad, torch.tensor([0.05, -0.25]))
    q = torch.nn.Parameter(p.detach().clone())
    (0.5 * 0.1 * ((q - p0) ** 2).sum()).backward()
    assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("make_client,mu", [(digits.make_client, 0.1), (digits.make_client, 2.0),
                                            (digits_wide.make_client, 0.1)])
def test_a_fit_equals_the_autograd_loop_bit_for_bit(make_client, mu: float) -> None:  # noqa: ANN001
    """Same seed, shard and start: the client's fit (in-place term) and the autograd loop give the
    same loss and parameters bit for bit over 5 epochs of SGD with momentum."""
    ds = load_digits()
    X, y = ds.train
    keep = np.isin(y, [0, 1, 2, 7])
    shard = (X[keep][:120], y[keep][:120])
    client = make_client(shard, ds.test, seed=3, hparams={"local_epochs": 5, "batch_size": 10})
    start = client.get_parameters({})
    got, _, metrics = client.fit(start, {"server_round": 2, "proximal_mu": mu})

    ref = make_client(shard, ds.test, seed=3, hparams={"local_epochs": 5, "batch_size": 10})
    ref.set_parameters(start)
    gen = torch.Generator().manual_seed(derive_seed(ref.seed, 1))
    loss = _autograd_loop(ref.model, ref.X_train, ref.y_train, epochs=5, batch_size=10,
                          optimizer=make_optimizer(ref.model, ref.hparams, ref.hparams["lr"]), generator=gen, mu=mu)
    want = ref.get_parameters({})
    assert metrics["train_loss"] == loss
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert not all(np.array_equal(a, b) for a, b in zip(got, start))
