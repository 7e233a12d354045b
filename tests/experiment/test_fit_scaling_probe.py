"""experiments/fit_scaling_probe.py: one client's fits timed, the table's ratios against the first size."""

from __future__ import annotations

import pytest

from clients.digits_wide import DEFAULT_WIDTH, num_parameters
from tests.experiment.scripts import experiment_script


@pytest.fixture(scope="module")
def probe():  # noqa: ANN201
    with experiment_script("fit_scaling_probe") as mod:
        yield mod


def test_fit_seconds_counts_the_models_parameters_and_times_every_fit(probe) -> None:  # noqa: ANN001
    n, first, rest = probe.fit_seconds("clients.digits_wide", fits=3, samples=20)
    assert n == num_parameters(DEFAULT_WIDTH)
    assert first > 0 and len(rest) == 2 and all(t > 0 for t in rest)


def test_table_ratios_are_against_the_first_size(probe, tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "t.md"
    assert probe.main(["--sizes", "wide", "wide", "--fits", "2", "--samples", "20", "--out", str(out)]) == 0
    text = out.read_text()
    assert "commit `" in text and "reproduce" in text
    rows = [line for line in text.splitlines() if line.startswith("| wide |")]
    assert len(rows) == 2 and rows[0].split("|")[-3].strip() == "1.0"  # params x of the first size


def test_one_fit_is_refused(probe) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        probe.main(["--sizes", "wide", "--fits", "1"])
