"""Quantile forecasts through the real command: bad levels are refused with the numbers and nothing
written; a conformal run prints coverage, width and MSIS and serves quantile columns from its logged model."""

from __future__ import annotations

import json

import pytest
from conftest import Cli

BAD = {
    "outside": ("model.quantiles=[0.05,0.5,1.5]", "[1.5] are outside (0, 1)"),
    "unsorted": ("model.quantiles=[0.95,0.5,0.05]", "[0.95, 0.5, 0.05]"),
    "duplicate": ("model.quantiles=[0.05,0.5,0.5,0.95]", "[0.5] repeat"),
    "no_median": ("model.quantiles=[0.05,0.95]", "0.5 (the median"),
    "calibration": ("model.calibration=isotonic", "`model.calibration` (isotonic)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_quantile_settings_exit_25_with_the_numbers_and_write_nothing(cli: Cli, case: str) -> None:
    override, numbers = BAD[case]
    proc = cli("data=tiny", "trainer=smoke", override)
    assert proc.returncode == 25, proc.stderr
    payload = json.loads(proc.stderr.strip().splitlines()[-1])
    assert payload["error"]["code"] == "CONFIG_ERROR"
    assert numbers in payload["error"]["message"]
    assert not cli.artifacts.exists() and not (cli.root / "mlruns").exists()
