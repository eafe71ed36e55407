"""``partrm-gym policy experiment configs/policy/headline.yaml``: is the world model useful for manipulation?

On held-out objects in the PyBullet twin, the success rate of: random drags, the scripted
policy, the CEM planner in imagination, PPO trained only in imagination (``PartRM-*``) and
PPO trained in the twin (``PartRMSim-*``) with the same budget of env steps. Then the same
policies run in the world-model env on the same seeds, and the correlation between the
imagined and the simulated return of each episode says how well imagination ranks policies.

Everything lands under ``--out``: per-policy JSON/CSV/GIF, ``results.md``/``.csv``, a plot.
The job resumes: trained agents and finished evaluations are reused when the command is run again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from partrm_gym.config import load_config, save_config
from partrm_gym.io import atomic_write_text
from partrm_gym.model.checkpoint import CHECKSUM_KEY, PROVENANCE, read_provenance
from partrm_gym.plotting import save_figure, subplots
from partrm_gym.policies.agents import AgentConfig, train_agent
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
    episodes: int = 40
    correlation_episodes: int = 20
    seed: int = 100_000  # episode i uses seed + i (not the training seeds)
    model_path: str | None = None  # world model for the planner and the imagined env (None: bundled)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    # agent name -> its training config (a YAML path or a shipped name such as policy/ppo_imagination)
    agents: dict[str, str] = field(default_factory=lambda: {"ppo_imagination": "policy/ppo_imagination",
                                                            "ppo_twin": "policy/ppo_twin"})
    baselines: tuple[str, ...] = ("random", "scripted", "planner")


def _train_agents(cfg: ExperimentConfig, out: Path) -> dict[str, Path]:
    folders = {}
    for name, config in cfg.agents.items():
        agent_cfg = load_config(AgentConfig, config)
        if cfg.model_path and agent_cfg.env_id.startswith("PartRM-"):
            agent_cfg = AgentConfig(**{**agent_cfg.__dict__,
                                       "env_kwargs": {**agent_cfg.env_kwargs, "model_path": cfg.model_path}})
        run = out / "agents" / name
        final = run / "final"
        if not (final / PROVENANCE).is_file():  # written last by save_agent: the agent is complete
            print(f"training {name}: {agent_cfg.algo} on {agent_cfg.env_id} for {agent_cfg.total_steps} steps")
            train_agent(agent_cfg, run, resume=latest_checkpoint(run) is not None)
        folders[name] = final
    return folders


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
    rows, scatter = [], []
    for name, policy in policies.items():
        def sim(policy: str = policy, name: str = name) -> tuple:
            actor = make_actor(policy, cfg.seed, cfg.model_path, cfg.planner, world_model)
            return evaluate(actor, cfg.eval_env, sim_kwargs, cfg.episodes, cfg.seed, desc=f"{name} (twin)")

        def imagined(policy: str = policy, name: str = name) -> tuple:
            actor = make_actor(policy, cfg.seed, cfg.model_path, cfg.planner, world_model)
            return evaluate(actor, cfg.imagined_env, imagined_kwargs, cfg.correlation_episodes, cfg.seed,
                            desc=f"{name} (imagined)")

        fingerprint = hashlib.sha256(json.dumps([asdict(cfg), policy, _weights_id(policy)], sort_keys=True,
                                                default=str).encode()).hexdigest()
        summary, sim_returns = _cached_eval(out, f"{name}_twin", fingerprint, sim)
        im_summary, im_returns = _cached_eval(out, f"{name}_imagined", fingerprint, imagined)
        print(format_summary(name, summary))
        rows.append({"policy": name, **{k: summary[k] for k in ("success_rate", "ci95", "mean_return",
                                                                 "mean_steps", "mean_final_joint_error")},
                     "imagined_success_rate": im_summary["success_rate"],
                     "imagined_mean_return": im_summary["mean_return"]})
        scatter += [(name, a, b) for a, b in zip(im_returns, sim_returns[:len(im_returns)])]
    corr = _correlations(scatter, rows)
    _write_tables(cfg, out, rows, corr)
    _plot(out / "results.png", rows, scatter)
    return {"rows": rows, "correlation": corr}


def _correlations(scatter: list[tuple[str, float, float]], rows: list[dict]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    im = np.array([s[1] for s in scatter])
    sim = np.array([s[2] for s in scatter])
    out = {"episodes": len(scatter)}
    if len(scatter) >= 3 and im.std() > 0 and sim.std() > 0:
        out["pearson_episode_returns"] = float(pearsonr(im, sim)[0])
        out["spearman_episode_returns"] = float(spearmanr(im, sim)[0])
    means_im = [r["imagined_mean_return"] for r in rows]
    means_sim = [r["mean_return"] for r in rows]
    if len(rows) >= 3 and np.std(means_im) > 0 and np.std(means_sim) > 0:
        out["spearman_policy_ranking"] = float(spearmanr(means_im, means_sim)[0])
    return out


def _write_tables(cfg: ExperimentConfig, out: Path, rows: list[dict], corr: dict[str, float]) -> None:
    lines = [f"# {cfg.name}", "",
             f"`partrm-gym policy experiment` — {cfg.episodes} held-out episodes ({cfg.split} split) in "
             f"`{cfg.eval_env}`, seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1}; imagined returns from "
             f"`{cfg.imagined_env}` on the first {cfg.correlation_episodes} of the same seeds.", "",
             "| policy | success (twin) | 95% CI | mean return (twin) | mean steps | final joint error | "
             "mean return (imagined) |", "|---|---|---|---|---|---|---|"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["policy", "success_rate", "ci_low", "ci_high", "mean_return", "mean_steps", "final_joint_error",
                "imagined_mean_return"])
    for r in rows:
        lo, hi = r["ci95"]
        err = r["mean_final_joint_error"]
        lines.append(f"| {r['policy']} | {100 * r['success_rate']:.0f}% | {100 * lo:.0f}–{100 * hi:.0f}% | "
                     f"{r['mean_return']:.3f} | {r['mean_steps']:.1f} | {'' if err is None else f'{err:.3f}'} | "
                     f"{r['imagined_mean_return']:.3f} |")
        w.writerow([r["policy"], r["success_rate"], lo, hi, r["mean_return"], r["mean_steps"], err,
                    r["imagined_mean_return"]])
    lines += ["", "Imagined vs simulated return: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                               for k, v in corr.items()), ""]
    atomic_write_text(out / "results.md", "\n".join(lines))
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.json", json.dumps({"rows": rows, "correlation": corr, "config": asdict(cfg)},
                                                       indent=2, default=str))


def _plot(path: Path, rows: list[dict], scatter: list[tuple[str, float, float]]) -> None:
    fig, (a, b) = subplots(1, 2, figsize=(10, 4))
    names = [r["policy"] for r in rows]
    rate = np.array([r["success_rate"] for r in rows])
    ci = np.array([r["ci95"] for r in rows])
    a.bar(names, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], capsize=4, color="tab:blue")
    a.set_ylim(0, 1)
    a.set_ylabel("success rate in the twin (95% CI)")
    a.tick_params(axis="x", rotation=30)
    for name in names:
        pts = np.array([(s[1], s[2]) for s in scatter if s[0] == name]).reshape(-1, 2)
        b.scatter(pts[:, 0], pts[:, 1], label=name, s=14)
    b.set_xlabel("imagined return")
    b.set_ylabel("simulated return")
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
