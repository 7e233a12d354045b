"""``import bdfl`` alone gives the subpackages as attributes (the README's task snippet calls
``bdfl.learning.data.load_digits()``; it raised AttributeError outside a run: an outside probe)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bdfl


def test_a_bare_import_reaches_the_subpackages() -> None:
    code = "import bdfl; d = bdfl.learning.data.load_digits(); print(d.name, d.num_classes)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["digits", "10"]
    with pytest.raises(AttributeError, match="no attribute 'learnin'"):
        bdfl.learnin  # noqa: B018 - a typo is still an AttributeError
