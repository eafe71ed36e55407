"""Deliberate thread counts: set_threads, the global --threads flag, and datagen --workers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import torch
import yaml

from partrm_gym.app import cli
from partrm_gym.config import to_dict
from partrm_gym.threads import (
    CHILD_ENV_VARS,
    DEFAULT_WAIT_POLICY,
    THREADS_ENV,
    WAIT_POLICY_ENV,
    available_cores,
    child_threads,
    set_threads,
)
from partrm_gym.train.data_config import DataConfig
from partrm_gym.train.data_format import PARTIAL_PREFIX, DatasetError
from partrm_gym.train.datagen import run_shard

TINY = {
    "name": "threads", "seed": 5, "categories": ["laptop", "storage_drawer"], "test_category": "microwave",
    "train_objects_per_category": 1, "val_objects_per_category": 1, "test_objects": 1, "max_parts_per_object": 1,
    "states_per_part": 2, "max_drags": 2, "input_resolution": 16, "splatter_resolution": 8, "view_resolution": 16,
}


@pytest.fixture
def restore_threads(monkeypatch):
    """set_threads changes this process's torch threads and environment; put both back afterwards."""
    for name in (THREADS_ENV, WAIT_POLICY_ENV, *CHILD_ENV_VARS):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_workers_make_the_same_bytes(tmp_path, restore_threads, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, "1"), (two, "2")):
        argv = ["--threads", "1", "datagen", str(config), "--out", str(out), "--quiet", "--workers", workers]
        assert cli.main(argv) == 0
        assert "5 generated, 0 already present (5 objects, 10 states)" in capsys.readouterr().out
    assert multiprocessing.active_children() == []
    files_one, files_two = _files(one), _files(two)
    assert sorted(files_one) == sorted(files_two)
    assert any(name.startswith("shards/") for name in files_one) and "manifest.json" in files_one
    assert not [name for name in files_one if PARTIAL_PREFIX in name]
    different = [name for name in files_one if files_one[name] != files_two[name]]
    assert different == []


def test_one_worker_is_this_process_with_one_thread(tmp_path, restore_threads, capsys, monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "test_objects": 0, "val_objects_per_category": 0,
                                      "categories": ["laptop"]}))
    assert cli.main(["datagen", str(config), "--out", str(tmp_path / "d"), "--quiet", "--workers", "1"]) == 0
    assert torch.get_num_threads() == 1
    assert multiprocessing.active_children() == []
    assert cli.main(["--threads", "2", "datagen", str(config), "--out", str(tmp_path / "e"), "--quiet",
                     "--workers", "1"]) == 0
    assert torch.get_num_threads() == 2  # an explicit --threads is kept
    capsys.readouterr()


def test_wait_policy_defaults_to_passive_and_keeps_the_users(monkeypatch, restore_threads):
    monkeypatch.delenv(WAIT_POLICY_ENV, raising=False)
    set_threads(1)
    assert os.environ[WAIT_POLICY_ENV] == DEFAULT_WAIT_POLICY == "PASSIVE"
    monkeypatch.setenv(WAIT_POLICY_ENV, "ACTIVE")
    set_threads(1)
    assert os.environ[WAIT_POLICY_ENV] == "ACTIVE"


def _dataset_with_a_stray_partial_file(tmp_path, object_index=0, **overrides):
    """A dataset folder of TINY's config (with ``overrides``) whose partial folder of the planned object
    ``object_index`` holds a file datagen did not write."""
    from partrm_gym.train.data_config import plan_objects

    config = {**TINY, **overrides}
    cfg = DataConfig(**{**config, "categories": tuple(config["categories"])})
    out = tmp_path / "data"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))  # a dataset of this config
    stray = out / "objects" / f"{PARTIAL_PREFIX}{plan_objects(cfg)[object_index].object_id}" / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("not datagen's")
    return cfg, out, stray


def test_a_datagen_error_in_a_parallel_run_stops_it_and_keeps_the_users_file(tmp_path):
    cfg, out, stray = _dataset_with_a_stray_partial_file(tmp_path)
    with pytest.raises(DatasetError, match="is not something datagen writes") as caught:
        run_shard(cfg, out, progress=False, workers=2)
    assert "Traceback" not in str(caught.value)
    assert multiprocessing.active_children() == []
    assert stray.read_text() == "not datagen's"


def test_a_worker_error_keeps_its_type_and_message(tmp_path):
    from partrm_gym.train.data_config import plan_objects
    from partrm_gym.train.datagen import _worker_loop, _worker_result

    cfg, out, stray = _dataset_with_a_stray_partial_file(tmp_path)
    spec = plan_objects(cfg)[0]
    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    tasks.put((cfg, out, spec))
    tasks.put(None)
    worker = ctx.Process(target=_worker_loop, args=(tasks, results))
    worker.start()
    try:
        report = results.get(timeout=120)
        worker.join(timeout=60)
        assert worker.exitcode == 0  # it took the stop sign after reporting the error
    finally:
        worker.terminate()
        worker.join()
    with pytest.raises(DatasetError, match="is not something datagen writes") as caught:
        _worker_result(report)
    assert "Traceback" not in str(caught.value)
    assert "in a datagen worker" in str(caught.value.__cause__)
    assert stray.read_text() == "not datagen's"


@pytest.mark.parametrize("n", [1, 2])
def test_set_threads_sets_torch_and_child_env(n, restore_threads):
    assert set_threads(n) == n
    assert torch.get_num_threads() == n
    assert all(os.environ[name] == str(n) for name in CHILD_ENV_VARS)


def test_set_threads_default(monkeypatch, restore_threads):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert set_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.delenv(THREADS_ENV)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert set_threads() == available_cores() == torch.get_num_threads()


@pytest.mark.parametrize("argv", [["--threads", "0", "verify", "x"], ["--threads", "two", "verify", "x"]])
def test_bad_threads_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("partrm-gym: error: argument --threads"), lines


def test_bad_threads_env_is_a_usage_error(monkeypatch, capsys, restore_threads):
    monkeypatch.setenv(THREADS_ENV, "0")
    assert cli.main(["verify", "x"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and THREADS_ENV in lines[0], lines


def test_child_threads_sets_and_restores_the_child_environment(monkeypatch, restore_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    with child_threads(1):
        assert all(os.environ[name] == "1" for name in CHILD_ENV_VARS)
        assert torch.get_num_threads() == threads  # this process keeps its own
    assert os.environ["OMP_NUM_THREADS"] == "2" and "MKL_NUM_THREADS" not in os.environ


def test_a_parallel_run_that_fails_with_many_objects_queued_exits(tmp_path):
    """An error while more objects are queued than the queue's pipe holds (~64 KiB of jobs): the command prints
    it and exits, rather than hanging at exit on the jobs nobody will take."""
    import subprocess
    import sys

    # 304 objects: far more jobs than the pipe holds
    cfg, out, stray = _dataset_with_a_stray_partial_file(tmp_path, train_objects_per_category=150)
    config = tmp_path / "many.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    code = ("import sys; from partrm_gym.app import cli; "
            f"sys.exit(cli.main(['datagen', {str(config)!r}, '--out', {str(out)!r}, '--quiet', '--workers', '2']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "is not something datagen writes" in run.stdout + run.stderr
    assert stray.read_text() == "not datagen's"


def test_an_error_in_a_spawned_worker_stops_the_run_with_the_workers_traceback(tmp_path, monkeypatch):
    """The spawned worker meets the stray file (second object) while this process is busy with the first: the run
    raises the worker's error, with its traceback as the cause, and keeps the user's file."""
    import time

    from partrm_gym.train import datagen

    cfg, out, stray = _dataset_with_a_stray_partial_file(tmp_path, object_index=1)

    def busy_until_the_worker_is_done(*args):  # this process only: the spawned worker imports the real one
        deadline = time.monotonic() + 180
        while multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.2)
        return 0, False

    monkeypatch.setattr(datagen, "_generate_one", busy_until_the_worker_is_done)
    with pytest.raises(DatasetError, match="is not something datagen writes") as caught:
        run_shard(cfg, out, progress=False, workers=2)
    assert "in a datagen worker" in str(caught.value.__cause__)
    assert multiprocessing.active_children() == []
    assert stray.read_text() == "not datagen's"
