"""``partrm-gym policy experiment configs/policy/headline.yaml``: is the world model useful for manipulation?

Every policy — random drags, the scripted policy, the CEM planner in imagination, PPO trained
only in imagination (``PartRM-*``) and earlier checkpoints of it, PPO trained in the twin
(``PartRMSim-*``) — runs the same held-out episodes (fixed seeds) closed-loop in the PyBullet
twin and in the world-model env, each in its own control mode. Per policy: success with Wilson
95% intervals and mean return in each world. Across episode pairs: Pearson and Spearman
correlation of imagined against twin return. Across policies: the rank agreement of success
rates (Spearman) and the mean maximum rank violation (MMRV, SIMPLER's definition).

Everything lands under ``--out``: per-policy JSON/CSV/GIF, ``results.md``/``.csv``, a plot.
The job resumes: trained agents and finished evaluations are reused when the command is run again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from partrm_gym.config import load_config, save_config
from partrm_gym.errors import UsageError
from partrm_gym.io import atomic_write_csv, atomic_write_text
from partrm_gym.model.checkpoint import CHECKSUM_KEY, PROVENANCE, read_provenance
from partrm_gym.model.world_model import default_checkpoint_dir
from partrm_gym.plotting import save_figure, subplots
from partrm_gym.policies.agent_config import AgentConfig
from partrm_gym.policies.agents import snapshot_dir, train_agent
from partrm_gym.policies.evaluate import evaluate, format_summary, make_actor, write_report
from partrm_gym.policies.planner import PlannerConfig
from partrm_gym.train.train_state import latest_checkpoint


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "headline-drawer"
    eval_env: str = "PartRMSim-Drawer-v0"  # where success is measured (the twin)
    imagined_env: str = "PartRM-Drawer-v0"  # the same tasks in imagination, for the return correlation
    split: str = "test"  # held-out instances
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # more task settings for both envs (max_steps, ...)
    episodes: int = 40  # in each world
    seed: int = 100_000  # episode i uses seed + i (not the training seeds)
    model_path: str | None = None  # world model for the planner and the imagined env (None: bundled)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    # agent name -> its training config (a YAML path or a shipped name such as policy/ppo_imagination)
    agents: dict[str, str] = field(default_factory=lambda: {"ppo_imagination": "policy/ppo_imagination",
                                                            "ppo_twin": "policy/ppo_twin"})
    baselines: tuple[str, ...] = ("random", "scripted", "planner")
    # True: trained agents act by sampling their Gaussian policy (the policy PPO optimises; seeded, reproducible)
    # instead of taking its mean action. Why: after a drag that grasps nothing the observation is unchanged, so a
    # mean action repeats the miss to the end of the episode (docs/experiment.md measures both)
    sample_actions: bool = False
    # agent name -> env steps of earlier checkpoints also evaluated (as "name@steps"), so the policies span weak
    # to strong; 0 is the behaviour clone a warm-started agent starts from
    checkpoints: dict[str, list[int]] = field(default_factory=dict)


def _train_agents(cfg: ExperimentConfig, out: Path) -> dict[str, Path]:
    folders = {}
    for name, config in cfg.agents.items():
        agent_cfg = load_config(AgentConfig, config)
        if cfg.model_path and agent_cfg.env_id.startswith("PartRM-"):
            agent_cfg = AgentConfig(**{**agent_cfg.__dict__,
                                       "env_kwargs": {**agent_cfg.env_kwargs, "model_path": cfg.model_path}})
        run = out / "agents" / name
        final = run / "final"
        _check_cached_agent(run, name, agent_cfg)
        if not (final / PROVENANCE).is_file():  # written last by save_agent: the agent is complete
            print(f"training {name}: {agent_cfg.algo} on {agent_cfg.env_id} for {agent_cfg.total_steps} steps")
            train_agent(agent_cfg, run, resume=latest_checkpoint(run) is not None)
        folders[name] = final
        for steps in cfg.checkpoints.get(name, []):
            folder = snapshot_dir(run, steps)
            if not (folder / PROVENANCE).is_file():
                raise UsageError(f"checkpoints: {name} has no snapshot at {steps} steps ({folder}); use a multiple of "
                                 f"its snapshot_every ({agent_cfg.snapshot_every}) below {agent_cfg.total_steps}, "
                                 f"or 0 for the behaviour clone of an agent with warm_start: scripted")
            folders[f"{name}@{steps}"] = folder
    return folders


def _check_cached_agent(run: Path, name: str, cfg: AgentConfig) -> None:
    """An agent folder left by an earlier run is reused (or resumed) only when it was trained with ``cfg``: a changed
    agent config must not be answered with the old agent."""
    saved = run / "agent.yaml"
    if not saved.is_file():
        return
    now, before = asdict(cfg), asdict(load_config(AgentConfig, saved))
    changed = sorted(k for k in now if now[k] != before[k])
    if changed:
        raise UsageError(f"{run} holds agent {name!r} trained with other settings ({', '.join(changed)} differ from "
                         "its config now); give the experiment a new --out, or remove that folder to retrain it")


def _cached_eval(out: Path, key: str, fingerprint: str, run: Any) -> tuple[dict[str, Any], list[float]]:
    """Evaluation summaries are written once; a rerun with the same settings reads them (the job resumes
    after a kill), a rerun with other settings (episodes, model, planner, ...) evaluates again."""
    path = out / "eval" / f"{key}.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        if summary.get("fingerprint") == fingerprint:
            return summary, summary["returns"]
    summary, results = run()
    summary.update({"returns": [r.ret for r in results], "fingerprint": fingerprint})
    write_report(out / "eval", key, summary, results)
    return summary, summary["returns"]


def _evaluation_settings(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a policy's evaluation depends on: the envs, tasks, episodes, world model and planner — not which other
    policies the experiment holds, so adding an agent or a baseline re-evaluates only that one."""
    settings = asdict(cfg)
    for name in ("name", "agents", "baselines", "checkpoints"):
        settings.pop(name)
    return settings


def _weights_id(policy: str) -> str | None:
    """The SHA-256 of an agent's weights (a retrained agent invalidates its cached evaluations)."""
    return read_provenance(policy).get(CHECKSUM_KEY) if Path(policy).is_dir() else None


def run_experiment(cfg: ExperimentConfig, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "experiment.yaml")
    agents = _train_agents(cfg, out)
    world_model = None
    if "planner" in cfg.baselines:
        from partrm_gym.model.world_model import WorldModel

        world_model = WorldModel.from_pretrained(cfg.model_path)
    policies = {**{b: b for b in cfg.baselines}, **{k: str(v) for k, v in agents.items()}}
    sim_kwargs = {**cfg.env_kwargs, "split": cfg.split}
    imagined_kwargs: dict[str, Any] = dict(sim_kwargs)
    if world_model is not None:
        imagined_kwargs["world_model"] = world_model  # one model in memory for the planner and the env
    elif cfg.model_path:
        imagined_kwargs["model_path"] = cfg.model_path
    # the world model's weights, so that evaluations cached with another (re-bundled) model are not reused
    world_model_id = read_provenance(cfg.model_path or default_checkpoint_dir()).get(CHECKSUM_KEY)
    rows, scatter = [], []
    for name, policy in policies.items():
        def sim(policy: str = policy, name: str = name) -> tuple:
            actor = make_actor(policy, cfg.seed, cfg.model_path, cfg.planner, world_model, cfg.sample_actions)
            return evaluate(actor, cfg.eval_env, sim_kwargs, cfg.episodes, cfg.seed, desc=f"{name} (twin)")

        def imagined(policy: str = policy, name: str = name) -> tuple:
            actor = make_actor(policy, cfg.seed, cfg.model_path, cfg.planner, world_model, cfg.sample_actions)
            return evaluate(actor, cfg.imagined_env, imagined_kwargs, cfg.episodes, cfg.seed,
                            desc=f"{name} (imagined)")

        fingerprint = hashlib.sha256(json.dumps([_evaluation_settings(cfg), policy, _weights_id(policy),
                                                 world_model_id], sort_keys=True, default=str).encode()).hexdigest()
        summary, sim_returns = _cached_eval(out, f"{name}_twin", fingerprint, sim)
        im_summary, im_returns = _cached_eval(out, f"{name}_imagined", fingerprint, imagined)
        print(format_summary(name, summary))
        rows.append({"policy": name, **{k: summary[k] for k in ("success_rate", "ci95", "mean_return",
                                                                 "mean_steps", "mean_final_joint_error")},
                     "imagined_success_rate": im_summary["success_rate"], "imagined_ci95": im_summary["ci95"],
                     "imagined_mean_return": im_summary["mean_return"]})
        scatter += [(name, a, b) for a, b in zip(im_returns, sim_returns)]
    corr = _correlations(scatter, rows)
    _write_tables(cfg, out, rows, corr)
    _plot(out / "results.png", rows, scatter)
    return {"rows": rows, "correlation": corr}


def mmrv(real: np.ndarray, imagined: np.ndarray) -> float:
    """Mean maximum rank violation (SIMPLER): the mean over policies i of the largest real-success gap
    |real_i - real_j| among the policies j whose order against i the imagined rates get wrong."""
    real, imagined = np.asarray(real, float), np.asarray(imagined, float)
    violated = (imagined[:, None] < imagined[None, :]) != (real[:, None] < real[None, :])
    return float(np.mean(np.max(np.abs(real[:, None] - real[None, :]) * violated, axis=1))) if len(real) else 0.0


def _correlations(scatter: list[tuple[str, float, float]], rows: list[dict]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    im = np.array([s[1] for s in scatter])
    sim = np.array([s[2] for s in scatter])
    out: dict[str, float] = {"episode_pairs": len(scatter)}
    if len(scatter) >= 3 and im.std() > 0 and sim.std() > 0:
        out["pearson_episode_returns"] = float(pearsonr(im, sim)[0])
        out["spearman_episode_returns"] = float(spearmanr(im, sim)[0])
    real = np.array([r["success_rate"] for r in rows])
    imagined = np.array([r["imagined_success_rate"] for r in rows])
    if len(rows) >= 3 and real.std() > 0 and imagined.std() > 0:
        out["spearman_policy_success"] = float(spearmanr(imagined, real)[0])
    out["mmrv_success"] = mmrv(real, imagined)
    return out


def _write_tables(cfg: ExperimentConfig, out: Path, rows: list[dict], corr: dict[str, float]) -> None:
    lines = [f"# {cfg.name}", "",
             f"`partrm-gym policy experiment` — {cfg.episodes} held-out episodes ({cfg.split} split, seeds "
             f"{cfg.seed}..{cfg.seed + cfg.episodes - 1}) per policy in `{cfg.eval_env}` and in `{cfg.imagined_env}`; "
             f"trained agents {'sample their actions' if cfg.sample_actions else 'take their mean action'}.",
             "", "| policy | success (twin) | 95% CI | success (imagined) | 95% CI | mean return (twin) | "
             "mean return (imagined) | mean steps (twin) | final joint error (twin) |",
             "|---|---|---|---|---|---|---|---|---|"]
    table = []
    for r in rows:
        (lo, hi), (ilo, ihi) = r["ci95"], r["imagined_ci95"]
        err = r["mean_final_joint_error"]
        lines.append(f"| {r['policy']} | {100 * r['success_rate']:.0f}% | {100 * lo:.0f}–{100 * hi:.0f}% | "
                     f"{100 * r['imagined_success_rate']:.0f}% | {100 * ilo:.0f}–{100 * ihi:.0f}% | "
                     f"{r['mean_return']:.3f} | {r['imagined_mean_return']:.3f} | {r['mean_steps']:.1f} | "
                     f"{'' if err is None else f'{err:.3f}'} |")
        table.append({"policy": r["policy"], "success_rate": r["success_rate"], "ci_low": lo, "ci_high": hi,
                      "imagined_success_rate": r["imagined_success_rate"], "imagined_ci_low": ilo,
                      "imagined_ci_high": ihi, "mean_return": r["mean_return"],
                      "imagined_mean_return": r["imagined_mean_return"], "mean_steps": r["mean_steps"],
                      "final_joint_error": err})
    lines += ["", "Imagined vs twin: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in corr.items()), ""]
    atomic_write_text(out / "results.md", "\n".join(lines))
    atomic_write_csv(out / "results.csv", table)
    atomic_write_text(out / "results.json", json.dumps({"rows": rows, "correlation": corr, "config": asdict(cfg)},
                                                       indent=2, default=str))


def _plot(path: Path, rows: list[dict], scatter: list[tuple[str, float, float]]) -> None:
    fig, (a, b) = subplots(1, 2, figsize=(11, 4))
    names = [r["policy"] for r in rows]
    x = np.arange(len(names))
    for offset, key, ci_key, label in ((-0.2, "success_rate", "ci95", "twin"),
                                       (0.2, "imagined_success_rate", "imagined_ci95", "imagination")):
        rate = np.array([r[key] for r in rows])
        ci = np.array([r[ci_key] for r in rows]).reshape(-1, 2)
        a.bar(x + offset, rate, width=0.4, yerr=[rate - ci[:, 0], ci[:, 1] - rate], capsize=3, label=label)
    a.set_xticks(x, names, rotation=30, ha="right")
    a.set_ylim(0, 1)
    a.set_ylabel("success rate (95% CI)")
    a.legend(fontsize=7)
    for name in names:
        pts = np.array([(s[1], s[2]) for s in scatter if s[0] == name]).reshape(-1, 2)
        b.scatter(pts[:, 0], pts[:, 1], label=name, s=14)
    b.set_xlabel("imagined return")
    b.set_ylabel("twin return")
    b.legend(fontsize=7)
    save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    cfg = load_config(ExperimentConfig, args.config)
    overrides = {k: v for k, v in (("episodes", args.episodes), ("model_path", args.model)) if v is not None}
    if overrides:
        cfg = ExperimentConfig(**{**cfg.__dict__, **overrides})
    result = run_experiment(cfg, Path(args.out))
    print((Path(args.out) / "results.md").read_text())
    return 0 if result["rows"] else 1
