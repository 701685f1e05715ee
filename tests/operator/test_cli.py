"""`seldon-mesh operator` hands every argument to the operator, flags first included (the chart's command)."""

from __future__ import annotations

import subprocess
import sys


def test_flags_right_after_the_word_reach_the_operator() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mesh.cli.main", "operator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--settings" in result.stdout and "--webhook-service" in result.stdout
