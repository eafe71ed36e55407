"""The command line: a user's mistake is one line on stderr and exit status 2; bugs keep their traceback."""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import pytest

import partrm_gym  # noqa: F401  (registers the envs)
from partrm_gym.app import cli
from partrm_gym.errors import UsageError


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse exits by itself (--help, usage errors)
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_usage_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("partrm-gym: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def subcommands() -> list[list[str]]:
    """Every leaf sub-command of the parser, e.g. ["policy", "train"]."""

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            return [prefix]
        return [leaf for name, sub in actions[0].choices.items() for leaf in walk(sub, [*prefix, name])]

    return walk(cli.build_parser(), [])


@pytest.mark.parametrize("command", subcommands(), ids=" ".join)
def test_every_subcommand_has_help(command, capsys):
    rc, out, err = run_cli([*command, "--help"], capsys)
    assert rc == 0, err
    assert out.startswith("usage: partrm-gym " + " ".join(command)), out[:200]


def test_the_parser_is_the_command_table():
    """One table lists every command (groups included): the parser has exactly its rows, each bound to its row."""
    names = {" ".join(c) for c in subcommands()}
    assert names == {c.name for c in cli.COMMANDS}
    assert {"train", "finetune-zero123pp", "datagen", "eval", "policy eval", "bench rollout"} <= names
    for command in cli.COMMANDS:
        module, function = command.target.split(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function)), command.name


@pytest.mark.parametrize("argv, fragments", [
    (["eval", "none", "--data", "x", "--max-pairs", "0"], ["--max-pairs", ">= 1"]),
    (["eval", "none", "--data", "x", "--max-pairs", "-1"], ["--max-pairs", ">= 1"]),
    (["policy", "eval", "--policy", "random", "--episodes", "0"], ["--episodes", ">= 1"]),
    (["policy", "eval", "--policy", "random", "--episodes", "-2"], ["--episodes", ">= 1"]),
    (["compare", "--steps", "-1"], ["--steps", ">= 1"]),
    (["datagen", "data/tiny", "--out", "x", "--shard", "-1"], ["--shard", ">= 0"]),
    (["datagen", "data/tiny", "--out", "x", "--num-shards", "0"], ["--num-shards", ">= 1"]),
    (["bench", "render", "--repeats", "zero"], ["--repeats", "not an integer"]),
    (["nonsense"], ["invalid choice"]),
])
def test_bad_numbers_and_choices_are_one_line(argv, fragments, capsys):
    rc, _, err = run_cli(argv, capsys)
    assert_one_line_usage_error(rc, err, *fragments)


def test_sample_actions_is_for_agents(tmp_path, capsys):
    rc, _, err = run_cli(["policy", "eval", "--policy", "scripted", "--sample-actions", "--out", str(tmp_path / "o")],
                         capsys)
    assert_one_line_usage_error(rc, err, "--sample-actions", "scripted")
    assert not (tmp_path / "o").exists()  # refused before any episode


def test_missing_config_file_is_file_not_found_listing_shipped_configs(tmp_path, capsys):
    rc, _, err = run_cli(["datagen", "nope.yaml", "--out", str(tmp_path / "d")], capsys)
    assert_one_line_usage_error(rc, err, "config file not found: nope.yaml", "data/tiny")
    assert not (tmp_path / "d").exists()  # refused before any work


@pytest.mark.parametrize("text, fragments", [
    ("", ["is empty"]),
    ("seed: [1, 2\n", ["not valid YAML"]),
    ("no_such_key: 1\n", ["unknown key", "no_such_key"]),
    ("seed: abc\n", ["seed", "expected an integer"]),
    ("states_per_part: 1\n", ["states_per_part"]),
])
def test_bad_config_files_are_one_line(tmp_path, capsys, text, fragments):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    rc, _, err = run_cli(["datagen", str(config), "--out", str(tmp_path / "d")], capsys)
    assert_one_line_usage_error(rc, err, str(config), *fragments)


def test_train_config_errors_are_one_line(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("stage: 5\n")
    rc, _, err = run_cli(["train", str(config)], capsys)
    assert_one_line_usage_error(rc, err, "stage")
    rc, _, err = run_cli(["train", "train/tiny_stage0", "--steps", "-3"], capsys)
    assert_one_line_usage_error(rc, err, "steps")


def test_output_file_where_a_folder_is_needed_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("mine")
    # --data does not exist either: the output check comes first, before the evaluation starts
    rc, _, err = run_cli(["eval", "none", "--data", str(tmp_path / "nodata"), "--out", str(out)], capsys)
    assert_one_line_usage_error(rc, err, str(out), "is a file")
    assert out.read_text() == "mine"
    rc, _, err = run_cli(["eval", "none", "--data", str(tmp_path), "--out", str(out / "sub")], capsys)
    assert_one_line_usage_error(rc, err, "is a file")


def test_bench_out_must_be_a_file(tmp_path, capsys):
    rc, _, err = run_cli(["bench", "render", "--out", str(tmp_path)], capsys)
    assert_one_line_usage_error(rc, err, "is a folder")


def test_errors_name_the_kind_of_path(tmp_path, capsys):
    """A device, a FIFO, a folder or a file where another kind is needed: the error says which it is."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for argv, kind in ([["train", "/dev/null"], "is a device"], [["train", str(fifo)], "is a FIFO"],
                       [["train", str(tmp_path)], "is a folder"], [["verify", "/dev/null"], "a device, not a folder"],
                       [["verify", str(fifo)], "a FIFO, not a folder"],
                       [["demo", "--out", "/dev/null"], "is a device, not a folder"],
                       [["bench", "render", "--out", str(fifo)], "is a FIFO, not a file"]):
        rc, _, err = run_cli(argv, capsys)
        assert_one_line_usage_error(rc, err, kind)


def test_bench_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    from partrm_gym.app.bench.report import REPORT_MARKER, write_report

    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    rc, _, err = run_cli(["bench", "render", "--repeats", "1", "--out", str(notes)], capsys)
    assert_one_line_usage_error(rc, err, str(notes), "not written by partrm-gym bench")
    assert notes.read_text() == "my notes\n"
    report = tmp_path / "bench.md"
    write_report(report, "## first\n")
    write_report(report, "## second\n")  # a report the bench wrote is replaced
    assert report.read_text() == f"## second\n\n{REPORT_MARKER}\n"
    notes.write_text(f"{REPORT_MARKER}\nmy notes below the marker\n")  # the marker must be the last line
    with pytest.raises(UsageError):
        write_report(notes, "## third\n")


def test_missing_dataset_is_one_line(tmp_path, capsys):
    rc, _, err = run_cli(["eval", "none", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "o")], capsys)
    assert_one_line_usage_error(rc, err, "nodata")


def test_sim_preview_joint_out_of_range(tmp_path, capsys):
    rc, _, err = run_cli(["sim-preview", "--joint", "99", "--resolution", "16", "--out", str(tmp_path)], capsys)
    assert_one_line_usage_error(rc, err, "--joint 99", "choose 0..")
    assert not list(tmp_path.iterdir())


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    rc, _, err = run_cli(["--debug", "datagen", "nope.yaml", "--out", str(tmp_path / "d")], capsys)
    assert rc == 2 and "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("partrm-gym: error: ")
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    rc, _, err = run_cli(["datagen", "nope.yaml", "--out", str(tmp_path / "d")], capsys)
    assert rc == 2 and "Traceback" in err


def test_internal_bugs_keep_their_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug, not the user's fault")

    import partrm_gym.train.verify as verify

    monkeypatch.setattr(verify, "main", broken)
    with pytest.raises(KeyError):
        cli.main(["verify", "somewhere"])


@pytest.mark.parametrize("kwargs, fragment", [
    ({"task": "bogus"}, "'open', 'close', 'random'"),
    ({"split": "val"}, "'train', 'test'"),
    ({"reward_mode": "bogus"}, "'dense', 'sparse'"),
    ({"max_steps": 0}, "max_steps"),
    ({"resolution": 2}, "resolution"),
    ({"category": "spaceship"}, "unknown category"),
    ({"joint_success_tolerance": -0.1}, "joint_success_tolerance"),
    ({"colour": "red"}, "unknown environment argument"),
])
@pytest.mark.parametrize("env_id", ["PartRMSim-Drawer-v0", "PartRM-Drawer-v0"])
def test_env_arguments_are_validated_at_make(env_id, kwargs, fragment):
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        gym.make(env_id, **kwargs)


def test_only_shape_4_is_an_action():
    env = gym.make("PartRMSim-Drawer-v0", resolution=16, max_steps=2)
    env.reset(seed=0)
    try:
        for bad in (np.zeros((2, 2)), [[0.0], [0.0], [0.0], [0.0]], np.zeros(5), "abcd"):
            with pytest.raises(ValueError, match="action must"):
                env.step(bad)
        env.step(np.zeros(4, np.float32))  # the valid shape still works
    finally:
        env.close()


def test_datagen_refuses_a_foreign_out_folder_and_keeps_the_users_file(tmp_path, capsys):
    mine = tmp_path / "out" / "objects" / "storage_drawer_0000000" / "mywork.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("precious")
    rc, _, err = run_cli(["datagen", "data/tiny", "--out", str(tmp_path / "out")], capsys)
    assert_one_line_usage_error(rc, err, "mywork.txt", "not a dataset folder")
    assert mine.read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["mywork.txt", "objects", "storage_drawer_0000000"]


@pytest.mark.parametrize("argv, fragments", [
    (["sim-preview", "--category", "spaceship"], ["unknown category 'spaceship'"]),
    (["policy", "eval", "--policy", "random", "--env", "Bogus-v0"], ["unknown env 'Bogus-v0'", "PartRMSim-Drawer-v0"]),
    (["policy", "eval", "--policy", "no/such/agent"], ["no/such/agent"]),
])
def test_unknown_names_are_one_line(tmp_path, capsys, argv, fragments):
    rc, _, err = run_cli([*argv, "--out", str(tmp_path / "o")], capsys)
    assert_one_line_usage_error(rc, err, *fragments)


def test_verify_of_a_missing_folder_is_one_line(tmp_path, capsys):
    rc, _, err = run_cli(["verify", str(tmp_path / "nothing")], capsys)
    assert_one_line_usage_error(rc, err, "not a folder")


def test_vector_env_takes_only_num_envs_by_4_actions():
    from conftest import MINI

    from partrm_gym.envs.vector_env import PartRMVectorEnv
    from partrm_gym.model.partrm import PartRM
    from partrm_gym.model.world_model import WorldModel

    venv = PartRMVectorEnv(2, world_model=WorldModel(PartRM(MINI), MINI), category="drawer", resolution=16, max_steps=2)
    venv.reset(seed=0)
    try:
        for bad in (np.zeros(4), np.zeros((2, 2, 2)), np.zeros((3, 4)), np.zeros(8)):
            with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
                venv.step(bad)
        venv.step(np.zeros((2, 4), np.float32))
    finally:
        venv.close()
