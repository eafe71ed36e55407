"""``bench gpu`` in its dry mode (tiny lgm network, CPU, torch rasterizer): every section runs, the report grows
section by section (a run killed midway leaves what it measured), and the summary line is printed last."""

import argparse

import pytest

from partrm_gym.app.bench import gpu
from partrm_gym.app.bench.report import REPORT_MARKER

SECTIONS = ("### gsplat", "### Training: lgm_dry", "### LGM-format weights", "### Envs:")


def _args(out):
    return argparse.Namespace(dry_run=True, out=str(out), repeats=10, model=None, device="auto")


def test_dry_run_reports_every_section_and_ends_with_the_summary(tmp_path, capsys):
    text = gpu.bench_gpu(_args(tmp_path / "gpu.md"))
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("bench gpu (dry run): gsplat first call") and "parity ok" in printed[-1]
    written = (tmp_path / "gpu.md").read_text()
    assert written.rstrip().endswith(REPORT_MARKER) and "dry run" in written
    for heading in SECTIONS:
        assert heading in text and heading in written
    assert "tensors placed | 116 / 116, none left over" in written


def test_a_run_stopped_midway_keeps_what_it_measured(tmp_path, monkeypatch):
    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu, "weights_section", killed)
    with pytest.raises(KeyboardInterrupt):
        gpu.bench_gpu(_args(tmp_path / "gpu.md"))
    written = (tmp_path / "gpu.md").read_text()
    assert "### gsplat" in written and "### Training: lgm_dry" in written and "### LGM-format weights" not in written
    assert written.rstrip().endswith(REPORT_MARKER)
