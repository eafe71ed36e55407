"""Planner in imagination, SB3 agents (safetensors checkpoints, resume), evaluation and the experiment."""

import copy
import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import MINI

from partrm_gym.errors import UsageError
from partrm_gym.model.checkpoint import save_checkpoint
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel
from partrm_gym.policies.agent_config import AgentConfig
from partrm_gym.policies.agent_envs import make_env
from partrm_gym.policies.agents import AgentPolicy, load_agent, snapshot_dir, train_agent
from partrm_gym.policies.episodes import wilson_interval
from partrm_gym.policies.evaluate import evaluate
from partrm_gym.policies.experiment import ExperimentConfig, run_experiment
from partrm_gym.policies.planner import ImaginationPlanner, PlannerConfig
from partrm_gym.rendering import BACKGROUND_RGB

TWIN_KWARGS = {"split": "train", "resolution": 40, "max_steps": 2}  # NatureCNN needs >= 36 px


def mini_world_model(seed=2, articulation_head=True):
    torch.manual_seed(seed)
    cfg = replace(MINI, articulation_head=articulation_head)
    return WorldModel(PartRM(cfg), cfg)


def test_planner_by_image_batches_candidates_and_returns_a_valid_action():
    wm = mini_world_model(articulation_head=False)  # regenerate-only model: scored by goal-image distance
    calls = []
    predict = wm.predict
    wm.predict = lambda views, *a, **k: calls.append(len(views)) or predict(views, *a, **k)
    cfg = PlannerConfig(candidates=6, iterations=2, elites=2)
    planner = ImaginationPlanner(wm, cfg, seed=0)
    env = make_env("PartRMSim-Drawer-v0", {**TWIN_KWARGS, "control_mode": "object_drag"}).unwrapped
    obs, _ = env.reset(seed=1)
    with pytest.raises(UsageError, match="control_mode='pixel_drag'"):
        planner.act(env, obs)  # its actions would mean something else
    env.close()
    calls.clear()
    env = make_env("PartRMSim-Drawer-v0", {**TWIN_KWARGS, "control_mode": "pixel_drag"}).unwrapped
    obs, _ = env.reset(seed=1)
    action = planner.act(env, obs)
    assert action.shape == (4,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    assert calls[0] == 1 and 2 <= len(calls) <= 1 + cfg.iterations  # a reconstruction, then one batch per iteration
    assert all(1 <= c <= cfg.candidates for c in calls[1:])  # (iterations in which every drag missed call nothing)
    assert planner.last_scores.shape == (cfg.candidates * cfg.iterations,)
    assert np.all((planner.last_scores >= 0) & (planner.last_scores <= 1))
    with pytest.raises(ValueError, match="elites"):
        ImaginationPlanner(wm, PlannerConfig(candidates=2, elites=3))
    # the candidates keep the scripted drag's start unless vary_start; CEM then searches the start too
    for vary_start in (False, True):
        planner = ImaginationPlanner(wm, replace(cfg, vary_start=vary_start), seed=0)
        scored = _record_candidates(planner)
        prior = copy.deepcopy(planner.prior)(obs)  # the drag the planner's prior is about to propose
        planner.act(env, obs)
        starts = np.concatenate(scored)[:, :2]
        assert np.allclose(starts, prior[:2]) != vary_start
    env.close()


def _record_candidates(planner: ImaginationPlanner) -> list[np.ndarray]:
    """The candidate actions the planner's image scorer is given, one array per CEM iteration."""
    scored: list[np.ndarray] = []
    make_scorer = planner._image_scorer

    def recording_scorer(*args):
        score = make_scorer(*args)
        return lambda actions: scored.append(actions.copy()) or score(actions)

    planner._image_scorer = recording_scorer
    return scored


def test_planner_by_joint_progress_on_true_geometry_picks_a_drag_towards_the_goal():
    """With the true parts and joints as its imagined state (GT splatter of the twin's scene, oracle labels),
    the planner's best candidate brings the task joint closer to its goal, and no candidate calls the network."""
    from partrm_gym.app.bench.rollout import oracle_state
    from partrm_gym.gaussians import Gaussians
    from partrm_gym.gt_splatter import splatter_from_frames

    wm = mini_world_model()
    env = make_env("PartRMSim-Drawer-v0", {**TWIN_KWARGS, "control_mode": "pixel_drag", "resolution": 64}).unwrapped
    obs, info = env.reset(seed=3)
    cams = wm.input_cameras
    base = Gaussians.from_splatter(torch.from_numpy(splatter_from_frames(env.scene.render_views(cams), cams))[None])
    truth = oracle_state(base, env.scene, cams)
    for joint in truth.joints:  # the planner's imagined state starts, like a fresh prediction, at 0 with no limits
        joint.value = joint.start = 0.0
    network_calls = []
    wm.predict = lambda *a, **k: network_calls.append("predict")
    wm.predict_articulated = lambda views, grouping=None: network_calls.append("articulated") or [truth.copy()]
    # the start searched too, so the test does not hinge on the scripted start pixel grasping the task part
    planner = ImaginationPlanner(wm, PlannerConfig(candidates=16, iterations=2, elites=4, vary_start=True), seed=0)
    action = planner.act(env, obs)
    assert network_calls == ["articulated"]  # one reconstruction per step, none per candidate
    assert planner.last_scores.min() < info["joint_error"] - 0.05  # a candidate moves the joint towards its goal
    _, _, _, _, after = env.step(action)
    assert after["joint_error"] < info["joint_error"]  # and the executed drag does so in the twin
    env.close()


def test_wilson_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and abs(hi - 0.2775) < 1e-3
    lo, hi = wilson_interval(5, 10)
    assert abs(lo - 0.2366) < 1e-3 and abs(hi - 0.7634) < 1e-3
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_agent_trains_checkpoints_resumes_and_reloads(tmp_path):
    cfg = AgentConfig(algo="ppo", env_id="PartRMSim-Drawer-v0", env_kwargs=TWIN_KWARGS, total_steps=64, n_envs=1,
                      n_steps=32, batch_size=32, n_epochs=1, checkpoint_every=32, snapshot_every=32)
    final = train_agent(cfg, tmp_path / "run", progress=False)
    snapshots = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snapshots == ["step_00000032", "step_00000064"]  # kept, never pruned
    assert (final / "policy.safetensors").is_file() and (final / "agent.yaml").is_file()
    assert not list(final.glob("*.zip")) and not list(final.glob("*.pkl"))  # no pickles
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    assert steps == ["step_0000032", "step_0000064"]
    model, loaded_cfg = load_agent(final)
    assert loaded_cfg == cfg
    obs = make_env(cfg.env_id, cfg.env_kwargs).reset(seed=0)[0]
    a1 = AgentPolicy(model)({"image": obs[..., :3], "goal": obs[..., 3:]})
    a2, _ = load_agent(final)[0].predict(obs, deterministic=True)
    assert np.allclose(a1, a2) and a1.shape == (4,)
    # sampled actions: reproducible from the policy's seed, not the mean, and the global torch RNG is untouched
    current = {"image": obs[..., :3], "goal": obs[..., 3:]}
    torch_state = torch.get_rng_state()
    sampled = [AgentPolicy(model, deterministic=False, seed=s) for s in (5, 5, 6)]
    first, again, other = ([p(current) for _ in range(3)] for p in sampled)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.allclose(first[0], other[0]) and not np.allclose(first[0], first[1])
    assert not np.allclose(first[0], a1)
    longer = AgentConfig(**{**cfg.__dict__, "total_steps": 96})
    train_agent(longer, tmp_path / "run", resume=True, progress=False)
    provenance = json.loads((tmp_path / "run" / "final" / "provenance.json").read_text())
    assert provenance["metrics"]["num_timesteps"] == 96  # continued from 64, not from 0


def test_exploration_std_anneals_geometrically_and_is_validated(tmp_path):
    from partrm_gym.policies.agents import exploration_std

    base = {"algo": "ppo", "env_id": "PartRMSim-Drawer-v0", "total_steps": 1000}
    scratch = AgentConfig(**base, final_std=0.04)
    assert exploration_std(scratch, 0) == pytest.approx(1.0)  # SB3's initial std
    assert exploration_std(scratch, 500) == pytest.approx(0.2)  # geometric mean of 1 and 0.04
    assert exploration_std(scratch, 1000) == pytest.approx(0.04) == exploration_std(scratch, 5000)
    cloned = AgentConfig(**base, final_std=0.05, warm_start="scripted", warm_start_std=0.2)
    assert exploration_std(cloned, 0) == pytest.approx(0.2) and exploration_std(cloned, 500) == pytest.approx(0.1)
    for bad in ({"final_std": 0.0}, {"final_std": 0.1, "algo": "sac"}):
        with pytest.raises(ValueError, match="final_std"):
            AgentConfig(**{**base, **bad})
    # in training, every rollout starts at the scheduled std (PPO's update then moves it a little)
    cfg = AgentConfig(algo="ppo", env_id="PartRMSim-Drawer-v0", env_kwargs=TWIN_KWARGS, total_steps=64, n_envs=1,
                      n_steps=32, batch_size=32, n_epochs=1, checkpoint_every=64, final_std=0.1)
    model, _ = load_agent(train_agent(cfg, tmp_path / "run", progress=False))
    std = float(model.policy.log_std.exp().mean())
    assert std == pytest.approx(exploration_std(cfg, 32), rel=0.1) and std < 0.5


def test_warm_start_clones_the_scripted_policy_before_ppo(tmp_path):
    """Demonstrations of successful scripted episodes in the training env, translated into its control mode;
    cloning fits them (the loss falls) and sets the exploration std; PPO then starts from the clone."""
    from partrm_gym.envs.task import TaskConfig
    from partrm_gym.policies.agent_envs import make_vec_env
    from partrm_gym.policies.agents import build_agent
    from partrm_gym.policies.warm_start import behaviour_clone, scripted_demonstrations

    kwargs = {**TWIN_KWARGS, "max_steps": 4, "control_mode": "object_drag"}
    cfg = AgentConfig(algo="ppo", env_id="PartRMSim-Drawer-v0", env_kwargs=kwargs, total_steps=32, n_envs=2,
                      n_steps=16, batch_size=32, n_epochs=1, checkpoint_every=32, warm_start="scripted",
                      warm_start_steps=24, warm_start_epochs=3, image_shift=2)
    venv = make_vec_env(cfg)
    try:
        obs, actions, returns = scripted_demonstrations(venv, TaskConfig(**kwargs), 24, 0.95, progress=False)
        assert obs.shape[1:] == (40, 40, 6) and len(obs) == len(actions) == len(returns) > 0
        assert np.all(np.abs(actions) <= 1) and np.isfinite(returns).all()
        model = build_agent(cfg, venv)
        first = behaviour_clone(model, obs, actions, returns, epochs=1, std=0.3)
        later = behaviour_clone(model, obs, actions, returns, epochs=30, std=0.3)
        assert later["action_loss"] < first["action_loss"]
        assert torch.allclose(model.policy.log_std.exp(), torch.full((4,), 0.3))
    finally:
        venv.close()
    final = train_agent(cfg, tmp_path / "run", progress=False)
    assert (snapshot_dir(tmp_path / "run", 0) / "policy.safetensors").is_file() and final.is_dir()  # the clone
    with pytest.raises(ValueError, match="warm_start.*ppo"):
        AgentConfig(algo="sac", warm_start="scripted")
    with pytest.raises(ValueError, match="image_shift"):
        AgentConfig(image_shift=-1)


def test_cloning_reads_one_feature_pass_for_both_heads():
    """Behaviour cloning's mean action and value come from one pass of the (shifting) CNN, so both heads see the
    same shifted batch; outside training they equal SB3's own ``get_distribution`` / ``predict_values``."""
    from partrm_gym.policies.agent_envs import make_vec_env
    from partrm_gym.policies.agents import build_agent
    from partrm_gym.policies.warm_start import mean_action_and_value

    cfg = AgentConfig(algo="ppo", env_id="PartRMSim-Drawer-v0", env_kwargs=TWIN_KWARGS, total_steps=32, n_envs=1,
                      n_steps=16, batch_size=16, n_epochs=1, checkpoint_every=32, image_shift=2)
    venv = make_vec_env(cfg)
    try:
        model = build_agent(cfg, venv)
        policy = model.policy
        obs, _ = policy.obs_to_tensor(np.stack([venv.reset()[0]] * 3))
        passes = []
        handle = policy.features_extractor.register_forward_hook(lambda *_: passes.append(1))
        policy.set_training_mode(True)
        mean, values = mean_action_and_value(policy, obs)
        assert len(passes) == 1 and mean.shape == (3, 4) and values.shape == (3,)
        handle.remove()
        policy.set_training_mode(False)
        with torch.no_grad():
            mean, values = mean_action_and_value(policy, obs)
            assert torch.allclose(mean, policy.get_distribution(obs).distribution.mean)
            assert torch.allclose(values, policy.predict_values(obs).squeeze(-1))
    finally:
        venv.close()


def test_random_shift_moves_images_and_keeps_object_drag_actions():
    """The training augmentation moves each image by a whole number of pixels (edges repeated), 0 leaves it alone,
    and an object_drag action is the same for a shifted observation and its equally shifted drag: the label
    stays right."""
    from partrm_gym.envs.task import TaskConfig, action_for_drag, object_mask
    from partrm_gym.policies.augment import random_shift

    h = w = 32
    image = np.full((h, w, 3), np.round(np.asarray(BACKGROUND_RGB) * 255), np.uint8)
    image[10:20, 8:24] = (200, 40, 40)  # the object, away from the border
    stacked = torch.as_tensor(np.concatenate([image, image], axis=-1)).permute(2, 0, 1)[None].repeat(16, 1, 1, 1)
    assert random_shift(stacked, 0) is stacked
    torch.manual_seed(0)
    moved = random_shift(stacked, 3).permute(0, 2, 3, 1).numpy()
    assert moved.shape == (16, h, w, 6)
    cfg = TaskConfig(control_mode="object_drag")
    drag = np.array([12.5 / w, 14.5 / h, 0.7, 0.3])  # starts on an object pixel's centre
    offsets = set()
    for m in moved:
        ys, xs = np.nonzero(object_mask(m[..., :3]))
        dy, dx = ys.min() - 10, xs.min() - 8
        assert abs(dy) <= 3 and abs(dx) <= 3 and len(ys) == 10 * 16  # moved, not cut or stretched
        assert np.array_equal(m[..., :3], m[..., 3:])  # the image and its goal moved together
        offsets.add((int(dy), int(dx)))
        shifted = drag + np.array([dx / w, dy / h, dx / w, dy / h])
        assert np.allclose(action_for_drag(cfg, shifted, m[..., :3]), action_for_drag(cfg, drag, image), atol=1e-6)
    assert len(offsets) > 1  # each image draws its own shift


def test_shifted_cnn_is_natures_cnn_outside_training():
    """The agents' CNN has NatureCNN's weights (agent folders from before load) and shifts only in training mode."""
    from stable_baselines3.common.torch_layers import NatureCNN

    from partrm_gym.policies.augment import ShiftedNatureCNN

    space = gym.spaces.Box(0, 255, (6, 40, 40), np.uint8)
    plain, shifted = NatureCNN(space), ShiftedNatureCNN(space, shift=4)
    assert plain.state_dict().keys() == shifted.state_dict().keys()
    shifted.load_state_dict(plain.state_dict())
    x = torch.rand(4, 6, 40, 40)
    plain.eval(), shifted.eval()
    assert torch.equal(plain(x), shifted(x))
    shifted.train()
    torch.manual_seed(0)
    assert not torch.equal(plain(x), shifted(x))


def test_bad_agent_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="policy.safetensors"):
        load_agent(tmp_path)
    cfg = AgentConfig(algo="ppo", env_id="PartRMSim-Drawer-v0", env_kwargs=TWIN_KWARGS, total_steps=32, n_envs=1,
                      n_steps=32, batch_size=32, n_epochs=1, checkpoint_every=32)
    final = train_agent(cfg, tmp_path / "run", progress=False)
    (final / "policy.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="corrupt"):
        load_agent(final)
    with pytest.raises(ValueError, match="algo"):
        AgentConfig(algo="dqn")


def test_evaluation_is_paired_by_seed():
    from partrm_gym.policies.scripted import make_policy

    a, ra = evaluate(make_policy("scripted", 0), "PartRMSim-Drawer-v0", TWIN_KWARGS, 3, seed=7, video_episodes=1)
    b, rb = evaluate(make_policy("scripted", 0), "PartRMSim-Drawer-v0", TWIN_KWARGS, 3, seed=7, video_episodes=0)
    assert [r.ret for r in ra] == [r.ret for r in rb] and a["success_rate"] == b["success_rate"]
    assert ra[0].frames and ra[0].frames[0].shape == (40, 80, 3) and not rb[0].frames
    assert 0.0 <= a["ci95"][0] <= a["success_rate"] <= a["ci95"][1] <= 1.0


def test_an_episode_draws_the_same_policy_noise_whatever_ran_before():
    """Common random numbers: episode ``seed`` reseeds the policy, so it is the same episode alone or after
    others, in the twin and in imagination (a paired comparison differs only by the world)."""
    from partrm_gym.policies.episodes import policy_seed, run_episode
    from partrm_gym.policies.scripted import RandomPolicy

    class Recording(RandomPolicy):
        def __call__(self, obs):
            self.actions.append(super().__call__(obs))
            return self.actions[-1]

    def actions_of_episode(policy, env, seed):
        policy.actions = []
        run_episode(env, policy, seed)
        return np.stack(policy.actions)

    env = make_env("PartRMSim-Drawer-v0", TWIN_KWARGS).unwrapped
    fresh, used = Recording(0), Recording(1)
    actions_of_episode(used, env, 3)  # `used` has drawn from its stream already
    episode = actions_of_episode(fresh, env, 9)
    assert np.array_equal(episode, actions_of_episode(used, env, 9))
    # the episode's policy stream: derived from the seed, and not the stream the env drew its task from
    assert np.array_equal(episode[0], np.random.default_rng(policy_seed(9)).uniform(-1.0, 1.0, 4).astype(np.float32))
    assert not np.allclose(episode[0], np.random.default_rng(9).uniform(-1.0, 1.0, 4))
    env.close()
    sampled = [AgentPolicy(None, deterministic=False, seed=s) for s in (0, 1)]
    sampled[1].reset(0)
    assert torch.equal(torch.as_tensor(sampled[0]._rng_state), torch.as_tensor(sampled[1]._rng_state))
    planner = ImaginationPlanner(mini_world_model(), seed=0)
    first, prior_first = planner.rng.random(), planner.prior.rng.random()
    planner.reset(0)
    assert planner.rng.random() == first and planner.prior.rng.random() == prior_first
    assert first != prior_first  # CEM's and the prior's streams are two streams, not two copies of one


def test_a_policy_runs_in_its_own_control_mode():
    from partrm_gym.policies.evaluate import env_kwargs_for
    from partrm_gym.policies.scripted import make_policy

    scripted, random = make_policy("scripted", 0), make_policy("random", 0)
    assert env_kwargs_for(scripted, TWIN_KWARGS)["control_mode"] == "pixel_drag"
    assert "control_mode" not in env_kwargs_for(random, TWIN_KWARGS)  # random acts in the env's mode
    with pytest.raises(UsageError, match="acts in control_mode='pixel_drag'.*given control_mode='object_drag'"):
        evaluate(scripted, "PartRMSim-Drawer-v0", {**TWIN_KWARGS, "control_mode": "object_drag"}, 1, seed=0)


def test_experiment_writes_table_and_resumes(tmp_path):
    save_checkpoint(PartRM(MINI), MINI, tmp_path / "mini")
    cfg = ExperimentConfig(episodes=2, seed=3, model_path=str(tmp_path / "mini"),
                           env_kwargs={"resolution": 32, "max_steps": 2},
                           planner=PlannerConfig(candidates=2, iterations=1, elites=1), agents={},
                           baselines=("random", "scripted", "planner"))
    out = tmp_path / "exp"
    result = run_experiment(cfg, out)
    assert [r["policy"] for r in result["rows"]] == ["random", "scripted", "planner"]
    for name in ("results.md", "results.csv", "results.png", "eval/planner_twin.json", "eval/random_imagined.csv"):
        assert (out / name).stat().st_size > 0
    assert result["correlation"]["episode_pairs"] == 6  # 3 policies x 2 episodes, each in both worlds
    assert 0.0 <= result["correlation"]["mmrv_success"] <= 1.0
    assert all(0.0 <= r["imagined_ci95"][0] <= r["imagined_success_rate"] for r in result["rows"])
    mtime = (out / "eval" / "planner_twin.json").stat().st_mtime_ns
    again = run_experiment(cfg, out)  # finished evaluations are reused, not recomputed
    assert (out / "eval" / "planner_twin.json").stat().st_mtime_ns == mtime
    assert again["rows"] == result["rows"]
    fewer = run_experiment(ExperimentConfig(**{**cfg.__dict__, "baselines": ("random", "planner")}), out)
    assert (out / "eval" / "planner_twin.json").stat().st_mtime_ns == mtime  # other policies: nothing re-run
    assert [r["policy"] for r in fewer["rows"]] == ["random", "planner"]
    more = run_experiment(ExperimentConfig(**{**cfg.__dict__, "episodes": 3}), out)  # other settings: evaluated anew
    assert json.loads((out / "eval" / "planner_twin.json").read_text())["episodes"] == 3
    assert all(r["ci95"][0] <= r["success_rate"] for r in more["rows"])
    mtime = (out / "eval" / "planner_twin.json").stat().st_mtime_ns
    torch.manual_seed(1)
    save_checkpoint(PartRM(MINI), MINI, tmp_path / "mini")  # the same path, other weights: evaluated anew
    run_experiment(ExperimentConfig(**{**cfg.__dict__, "episodes": 3}), out)
    assert (out / "eval" / "planner_twin.json").stat().st_mtime_ns != mtime


def test_experiment_hands_sample_actions_to_every_actor_and_states_it(tmp_path, monkeypatch):
    """``sample_actions`` reaches the actors of both worlds (agents then sample; baselines ignore it) and the table
    says how the agents acted."""
    import partrm_gym.policies.experiment as experiment

    save_checkpoint(PartRM(MINI), MINI, tmp_path / "mini")
    seen = []
    make_actor = experiment.make_actor
    monkeypatch.setattr(experiment, "make_actor", lambda *a: seen.append(a[5]) or make_actor(*a))
    for sample in (False, True):
        cfg = ExperimentConfig(episodes=1, seed=3, model_path=str(tmp_path / "mini"), agents={},
                               env_kwargs={"resolution": 32, "max_steps": 1}, baselines=("random",),
                               sample_actions=sample)
        run_experiment(cfg, tmp_path / f"exp_{sample}")
        text = (tmp_path / f"exp_{sample}" / "results.md").read_text()
        assert ("sample their actions" in text) == sample and ("take their mean action" in text) != sample
    assert seen == [False, False, True, True]  # twin and imagined, per setting


def test_experiment_refuses_an_agent_trained_with_other_settings(tmp_path):
    from partrm_gym.config import save_config
    from partrm_gym.policies.experiment import _check_cached_agent

    cfg = AgentConfig(algo="ppo", env_id="PartRMSim-Drawer-v0", total_steps=64)
    run = tmp_path / "agents" / "ppo"
    _check_cached_agent(run, "ppo", cfg)  # nothing cached yet
    run.mkdir(parents=True)
    save_config(cfg, run / "agent.yaml")
    _check_cached_agent(run, "ppo", cfg)  # the same settings: reused
    with pytest.raises(UsageError, match="final_std, total_steps differ.*new --out"):
        _check_cached_agent(run, "ppo", AgentConfig(**{**cfg.__dict__, "total_steps": 96, "final_std": 0.1}))


def test_mmrv_follows_simpler():
    from partrm_gym.policies.experiment import mmrv

    real = np.array([0.9, 0.5, 0.1])
    assert mmrv(real, np.array([0.8, 0.4, 0.0])) == 0.0  # same order: no violation
    # the imagined rates swap the first two: each of them is violated by a gap of 0.4, the third by none
    assert mmrv(real, np.array([0.3, 0.6, 0.0])) == pytest.approx((0.4 + 0.4 + 0.0) / 3)


def test_world_model_vec_env_for_sb3_batches_and_resets_in_the_same_step(tmp_path):
    from partrm_gym.policies.agent_envs import WorldModelVecEnv

    wm = mini_world_model()
    calls = []
    predict = wm.predict
    wm.predict = lambda views, *a, **k: calls.append(len(views)) or predict(views, *a, **k)
    kwargs = {"world_model": wm, "transition": "regenerate", **TWIN_KWARGS}  # the transition that calls the model
    venv = WorldModelVecEnv("PartRM-Drawer-v0", kwargs, n_envs=3, seed=1)
    obs = venv.reset()
    assert obs.shape == (3, 40, 40, 6) and obs.dtype == np.uint8
    calls.clear()
    centre = np.tile(np.array([0.0, 0.1, -0.2, 0.1], np.float32), (3, 1))
    venv.step_async(centre)
    obs1, rewards, dones, infos = venv.step_wait()
    assert len(calls) == 1 and calls[0] >= 1  # one batched call for the envs whose drag hit
    assert rewards.dtype == np.float32 and not dones.any()
    venv.step_async(centre)
    obs2, rewards, dones, infos = venv.step_wait()
    assert dones.all()  # max_steps = 2
    for i in range(3):
        terminal = infos[i]["terminal_observation"]
        assert terminal.shape == (40, 40, 6) and "is_success" in infos[i]
        assert not np.array_equal(terminal, obs2[i])  # obs2 already belongs to the next episode
    venv.close()


def test_ppo_trains_in_imagination(tmp_path):
    save_checkpoint(PartRM(MINI), MINI, tmp_path / "mini")
    cfg = AgentConfig(algo="ppo", env_id="PartRM-Drawer-v0", env_kwargs={**TWIN_KWARGS, "model_path":
                                                                         str(tmp_path / "mini")},
                      total_steps=32, n_envs=2, n_steps=16, batch_size=16, n_epochs=1, checkpoint_every=32)
    final = train_agent(cfg, tmp_path / "run", progress=False)
    model, _ = load_agent(final)
    assert model.num_timesteps == 0  # a loaded agent is for acting; its weights are the trained ones
    assert json.loads((final / "provenance.json").read_text())["metrics"]["num_timesteps"] == 32


def test_sac_trains_checkpoints_and_resumes(tmp_path):
    cfg = AgentConfig(algo="sac", env_id="PartRMSim-Drawer-v0", env_kwargs=TWIN_KWARGS, total_steps=24, n_envs=1,
                      batch_size=8, buffer_size=100, learning_starts=8, checkpoint_every=16)
    train_agent(cfg, tmp_path / "run", progress=False)
    ckpt = tmp_path / "run" / "checkpoints" / "step_0000016"
    assert (ckpt / "entropy_coefficient.safetensors").is_file()
    meta = json.loads((ckpt / "trainer.json").read_text())
    assert set(meta["optimizer"]) == {"actor", "critic", "ent_coef"}
    longer = AgentConfig(**{**cfg.__dict__, "total_steps": 32})
    final = train_agent(longer, tmp_path / "run", resume=True, progress=False)
    assert json.loads((final / "provenance.json").read_text())["metrics"]["num_timesteps"] == 32
    model, _ = load_agent(final)
    assert type(model).__name__ == "SAC"
