"""``partrm-gym demo``'s closed-loop rollout with a tiny random model: the GIF, the CSV, and the skip without a head."""

from dataclasses import replace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import MINI

import partrm_gym.app.demo as demo
from partrm_gym.app.bench.rollout import median_episode, run_rollouts, step_errors
from partrm_gym.app.demo import DemoConfig, choose_example, colour_part_labels, run_demo, run_rollout
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel

CFG = DemoConfig(resolution=32, rollout_steps=2, orbit_frames=2, category="drawer", seed=100_000)


def test_rollout_writes_one_gif_frame_and_csv_row_per_step(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(PartRM(MINI), MINI)
    files, lines = run_rollout(tmp_path, model, choose_example(CFG, model), steps=2)
    assert set(files) == {"rollout_gif", "rollout_csv"} and all(p.parent == tmp_path for p in files.values())
    frames = iio.imread(files["rollout_gif"])
    # step 0 (after reset) and 2 drags; simulated | imagined | parts, bench rollout's 64 px drawn at 128 each, 2 px
    # apart, under a 14 px header
    assert frames.shape == (3, 14 + 128 + 4, 3 * 128 + 4 * 2, 3)
    rows = [r.split(",") for r in files["rollout_csv"].read_text().splitlines()]
    assert rows[0] == ["step", "true_joint_fraction", "imagined_joint_fraction", "goal_fraction",
                       "psnr_imagined_vs_simulated_db"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert np.isfinite(values[:, :3]).all() and (values[:, :3] >= -1e-6).all() and (values[:, :3] <= 1 + 1e-6).all()
    assert values[0, 0] == values[0, 1]  # both resets start the task joint at the same value
    assert len(set(values[:, 2])) == 1  # the goal does not move
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 1 + 3 and "Closed-loop rollout" in "\n".join(lines)


def test_part_label_colours():
    labels = np.array([[-2, -1, 0, 1]])
    rgb = colour_part_labels(labels, task_part=1)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 255).all() and len({tuple(c) for c in rgb[0]}) == 4
    assert tuple(rgb[0, 3]) == (230, 40, 40)  # the task part is highlighted


def test_demo_without_an_articulation_head_skips_the_rollout_with_a_note(tmp_path):
    torch.manual_seed(0)
    no_head = replace(MINI, articulation_head=False)
    files = run_demo(tmp_path, cfg=CFG, world_model=WorldModel(PartRM(no_head), no_head))
    assert "rollout_gif" not in files and not (tmp_path / "rollout.gif").exists()
    notes = [line for line in files["metrics"].read_text().splitlines() if "Rollout skipped" in line]
    assert len(notes) == 1 and "articulation head" in notes[0]


def test_demo_and_preview_on_a_real_object(tmp_path, partnet_root):
    from partrm_gym.app.preview import sim_preview

    folder = partnet_root / "StorageFurniture" / "45261"  # five drawers
    torch.manual_seed(0)
    model = WorldModel(PartRM(MINI), MINI)
    files = run_demo(tmp_path / "demo", cfg=replace(CFG, partnet=str(folder)), world_model=model)
    text = files["metrics"].read_text()
    assert "PartNet-Mobility 45261, drawer joint" in text and "chosen by the user" in text
    assert files["rollout_gif"].is_file()
    png = sim_preview("drawer", 0, tmp_path / "preview", resolution=32, partnet=folder)
    assert png.name == "partnet_45261_preview.png" and png.is_file()


def test_the_default_example_is_the_median_episode_of_bench_rollout(tmp_path, monkeypatch):
    """The rule, on a short bench: the demo's default example is the episode whose joint read-out after the rule's
    number of drags has the (lower) median error, its rollout is that episode, and metrics.md says so."""
    monkeypatch.setattr(demo, "MEDIAN_OF", 5)
    monkeypatch.setattr(demo, "MEDIAN_STEP", 2)
    torch.manual_seed(0)
    model = WorldModel(PartRM(MINI), MINI)
    rows = run_rollouts(5, 2, "scripted", "articulated", world_model=model, progress=False)
    episode = median_episode(rows, 2)
    errors = sorted(step_errors(rows, 2).values())
    assert step_errors(rows, 2)[episode] == errors[2]  # the middle one of 5
    files = run_demo(tmp_path, cfg=DemoConfig(resolution=32, rollout_steps=2, orbit_frames=2), world_model=model)
    text = files["metrics"].read_text()
    assert f"This is episode {episode}: error {errors[2]:.3f}" in text and "median" in text
    assert f"reset seed {100_000 + episode}" in text
    csv = [r.split(",") for r in files["rollout_csv"].read_text().splitlines()[1:]]
    assert abs(float(csv[2][1]) - float(csv[2][2])) == pytest.approx(errors[2], abs=1e-3)  # the same episode


def test_median_episode_takes_the_lower_median_and_skips_unread_episodes():
    rows = [{"episode": e, "step": 4, "true_fraction": 0.0, "imagined_fraction": v}
            for e, v in enumerate([0.4, 0.1, float("nan"), 0.3, 0.2])]
    assert median_episode(rows, 4) == 4  # errors 0.1, 0.2, 0.3, 0.4: the lower median is 0.2
