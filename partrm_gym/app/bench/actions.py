"""``partrm-gym bench actions``: where random actions start, per control mode, in both env families.

An agent explores with near-random actions first; this measures what they grasp. For each
family (the PyBullet twin and the world-model env, bundled model, articulated transition) and
each ``control_mode``, uniform random actions are decoded against the reset observation of
test-split drawers; the table gives the share whose drag starts on an object pixel (the
observation's non-background pixels, :func:`~partrm_gym.envs.task.object_mask`) and on the task
part (the simulator's segmentation in the twin, the imagined part labels in the world-model env).
"""

from __future__ import annotations

import argparse

import numpy as np

from partrm_gym.app.bench.report import emit_report, markdown_table
from partrm_gym.drags import to_pixels
from partrm_gym.envs.task import drag_from_action, object_mask
from partrm_gym.policies.episodes import policy_seed

CONTROL_MODES = ("pixel_drag", "object_drag")
SEED_BASE = 100_000


def anchoring_rates(env, episodes: int, actions: int, seed: int = SEED_BASE) -> tuple[float, float]:
    """(share of random actions whose drag starts on the object, share that starts on the task part) over
    ``episodes`` resets (seeds ``seed + i``) × ``actions`` uniform actions each, in ``env``'s control mode."""
    rng = np.random.default_rng(policy_seed(seed))
    on_object = on_task = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        image, task = obs["image"], env.task_part_mask()
        objects = object_mask(image)
        for action in rng.uniform(-1.0, 1.0, (actions, 4)):
            rows, cols = env.camera.pixel_index(to_pixels(drag_from_action(env.cfg, action, image)[:2], env.camera))
            on_object += bool(objects[rows, cols])
            on_task += bool(task[rows, cols])
    n = episodes * actions
    return on_object / n, on_task / n


def bench_actions(args: argparse.Namespace) -> str:
    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel

    model = WorldModel.from_pretrained(args.model)
    rows = []
    for family in ("twin", "world model"):
        rates = {}
        for mode in CONTROL_MODES:
            task = {"category": "drawer", "split": "test", "control_mode": mode}
            env = PartRMSimEnv(**task) if family == "twin" else PartRMEnv(world_model=model, **task)
            rates[mode] = anchoring_rates(env, args.episodes, args.repeats)
            env.close()
        for mode in CONTROL_MODES:
            on_object, on_task = rates[mode]
            ratio = on_task / max(rates["pixel_drag"][1], 1e-12)
            rows.append([family, mode, on_object, on_task, ratio])
    table = markdown_table(["family", "control_mode", "starts on the object", "starts on the task part",
                            "task part: × pixel_drag's rate"], rows)
    table += (f"\n\n{args.episodes} test-split drawers (seeds {SEED_BASE}…), {args.repeats} uniform random actions on "
              "each reset observation.")
    return emit_report("Where random actions start", f"partrm-gym bench actions --episodes {args.episodes} "
                       f"--repeats {args.repeats}", table, args.out)
