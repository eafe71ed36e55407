"""The single command-line entry point, ``partrm-gym <subcommand>``.

Each subcommand is a small function taking the parsed arguments; heavy imports happen
inside it so ``partrm-gym --help`` stays instant.

Errors: a mistake in what the user gave (a :class:`~partrm_gym.errors.UserError`: a missing or
malformed config, a bad path, a number out of range, a broken asset or dataset) prints one line,
``partrm-gym: error: <what, where, what to do>``, and exits with status 2, argparse's convention
for usage errors. ``--debug`` (or ``PARTRM_GYM_DEBUG=1`` in the environment) shows the traceback
as well. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from partrm_gym.errors import DEBUG_ENV, USAGE_EXIT, run_reporting_user_errors
from partrm_gym.io import check_output_file, check_output_folder
from partrm_gym.registration import ENV_CATEGORIES
from partrm_gym.threads import THREADS_ENV, set_threads

PROG = "partrm-gym"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``partrm-gym: error: ...``) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = self.prog.removeprefix(PROG).strip()
        self.exit(USAGE_EXIT, f"{PROG}: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)\n")


def _count(minimum: int):
    """An argparse type: an integer >= ``minimum``, with a message naming the allowed range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be >= {minimum})")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int, non_negative_int = _count(1), _count(0)


# -- each command's arguments (argparse only: building the parser imports no torch) -------------------------
def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--held-out", action="store_true",
                   help="the held-out-category example (a dishwasher, a category no training split has) instead of "
                        "the representative one (docs/metrics in the demo's metrics.md)")
    p.add_argument("--category", default=None, help="object category (default: the representative example's)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="reset seed of the example task (default: the representative example's)")
    p.add_argument("--joint", type=non_negative_int, default=None,
                   help="which movable joint the drag moves (default: the example task's)")
    p.add_argument("--partnet", default=None, metavar="DIR", help="a real PartNet-Mobility object's folder instead "
                   "of a procedural object (the rollout then runs on that object too)")
    p.add_argument("--segmenter", default="sim", choices=["sim", "classical"],
                   help="part mask for drag propagation: simulator link mask, or OpenCV as on a real photo")
    p.add_argument("--rollout-steps", type=non_negative_int, default=None,
                   help="scripted drags of the imagined-vs-simulated rollout (default 4; 0: none)")


def _preview_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--category", default="drawer", help="category or alias (drawer, door, microwave, laptop, ...)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default="outputs/preview")
    p.add_argument("--resolution", type=positive_int, default=128)
    p.add_argument("--joint", type=non_negative_int, default=None,
                   help="which movable joint to open (default: the first door, drawer or lid)")
    p.add_argument("--partnet", default=None, metavar="DIR", help="a real PartNet-Mobility object's folder instead")


def _datagen_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML file or shipped name (data/tiny, data/default, data/paper)")
    p.add_argument("--out", required=True, help="dataset folder; re-run the same command to resume")
    p.add_argument("--shard", type=non_negative_int, default=0, help="this job's shard index (0-based)")
    p.add_argument("--num-shards", type=positive_int, default=1, help="total number of shards")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="processes generating objects side by side, one thread each (default: one per core; 1: "
                        "this process, one thread unless --threads says otherwise); the dataset is the same for "
                        "any number")
    p.add_argument("--partnet", default=None, metavar="DIR",
                   help="add the real PartNet-Mobility objects under DIR (sets the config's partnet_root)")


def _verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset folder")


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from partrm_gym.train.train_config import add_train_arguments

    add_train_arguments(p)


def _finetune_arguments(p: argparse.ArgumentParser) -> None:
    from partrm_gym.train.finetune_config import add_finetune_arguments

    add_finetune_arguments(p)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint folder, or 'none' for the baselines only")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", default="outputs/eval")
    p.add_argument("--max-pairs", type=positive_int, default=None, help="score this many pairs spread over the split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--lpips-weights", default=None, help="local LPIPS(VGG) weights file; without it LPIPS is "
                   "reported as unavailable")


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="Drawer", choices=sorted(ENV_CATEGORIES),
                   help="which PartRM-<env>-v0 / PartRMSim-<env>-v0 pair (the registered env names)")
    p.add_argument("--policy", default="scripted", choices=["scripted", "random"])
    p.add_argument("--steps", type=positive_int, default=5)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--partnet", default=None, metavar="DIR",
                   help="real objects: a PartNet-Mobility folder (objects 1-2 levels down) or one object's folder")
    p.add_argument("--out", default="outputs/compare")


def _export_task_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="the twin whose task is exported, e.g. PartRMSim-Drawer-v0")
    p.add_argument("--seed", type=non_negative_int, required=True, help="the reset seed of the task")
    p.add_argument("--out", required=True, help="the task folder (new or empty, or one exported before)")
    p.add_argument("--partnet", default=None, metavar="DIR",
                   help="a real PartNet-Mobility object's folder (or a root of them) instead of procedural objects")
    p.add_argument("--split", default=None, choices=["train", "test"], help="the task split (default: the env's)")
    p.add_argument("--joint", type=non_negative_int, default=None,
                   help="the task joint (position in the object's movable joints; default: the seed's draw)")
    p.add_argument("--model", default=None, help="the checkpoint whose input rig and size the views take "
                   "(default: the bundled model)")
    p.add_argument("--no-depth", action="store_true", help="write no depth images")


def _bundle_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stages", nargs="+", help="run folders in stage order; the last one's final/ is bundled")
    p.add_argument("--data", required=True, help="the dataset the runs trained on")
    p.add_argument("--eval", nargs="*", default=[], help="evaluation Markdown tables to ship beside the weights")


def _policy_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="agent YAML or shipped name (policy/ppo_imagination, policy/ppo_twin)")
    p.add_argument("--algo", choices=["ppo", "sac"])
    p.add_argument("--env", help="env ID, e.g. PartRM-Drawer-v0 (imagination) or PartRMSim-Drawer-v0 (twin)")
    p.add_argument("--steps", type=positive_int, help="total env steps")
    p.add_argument("--seed", type=non_negative_int)
    p.add_argument("--out", help="run folder (default runs/policy/ALGO_ENV)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")


def _policy_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="PartRMSim-Drawer-v0")
    p.add_argument("--policy", required=True, help="random | scripted | planner | an agent folder (…/final)")
    p.add_argument("--episodes", type=positive_int, default=20)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--seed", type=non_negative_int, default=100_000, help="episode i uses seed + i")
    p.add_argument("--model", default=None, help="planner: world-model checkpoint folder (default: bundled)")
    p.add_argument("--candidates", type=positive_int, default=16, help="planner: drags per CEM iteration")
    p.add_argument("--iterations", type=positive_int, default=2, help="planner: CEM iterations per step")
    p.add_argument("--sample-actions", action="store_true",
                   help="agent: sample actions from the policy (what PPO optimises) instead of its mean action")
    p.add_argument("--video-episodes", type=non_negative_int, default=1, help="episodes recorded into the GIF")
    p.add_argument("--partnet", default=None, metavar="DIR", help="tasks on the real PartNet-Mobility objects in DIR")
    p.add_argument("--out", default="outputs/policy_eval")


def _policy_experiment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default="policy/headline", help="experiment YAML or shipped name")
    p.add_argument("--episodes", type=positive_int, help="override the number of evaluation episodes")
    p.add_argument("--model", default=None, help="world-model checkpoint folder (default: bundled)")
    p.add_argument("--out", default="outputs/experiment")


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    """One argument set for every bench (``bench all`` hands it to each of them)."""
    p.add_argument("--model", default=None,
                   help="envs, rollout, actions: world-model checkpoint folder (default: the bundled model)")
    p.add_argument("--out", default=None, help="also write the table to this Markdown file (a new file, or a "
                   "report a bench wrote before: any other file is refused, never replaced)")
    p.add_argument("--repeats", type=positive_int, default=10)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--resolution", type=positive_int, default=64, help="gt-splatter: image and splatter resolution")
    p.add_argument("--objects", type=positive_int, default=3, help="gt-splatter: objects per category")
    p.add_argument("--splatter-resolution", type=positive_int, default=None,
                   help="gt-splatter: splatter resolution (default: --resolution)")
    p.add_argument("--fit-steps", type=non_negative_int, default=None,
                   help="gt-splatter: Adam steps fitting the splatter to the canonical views (default: the dataset's)")
    p.add_argument("--train-steps", type=positive_int, default=30, help="pipeline: training steps timed per stage")
    p.add_argument("--partnet", default=None, metavar="DIR",
                   help="sim: also time loading and rendering every real PartNet-Mobility object under DIR; "
                        "rollout: episodes on its real test objects; images: every task part of its test objects")
    p.add_argument("--episodes", type=positive_int, default=40,
                   help="rollout, actions, images: episodes (test split, seed 100000 + i)")
    p.add_argument("--steps", type=positive_int, default=8, help="rollout, images: drags per episode")
    p.add_argument("--policy", default="scripted", choices=["scripted", "random"], help="rollout: who drags")
    p.add_argument("--transition", default="articulated", choices=["articulated", "regenerate"],
                   help="rollout: the world-model env's transition")
    p.add_argument("--view-fit-steps", type=non_negative_int, default=None,
                   help="envs, rollout: steps fitting the reset reconstruction to the camera's first view "
                        "(default: the env's, 0; 10 is the measured setting)")


def _bench_model_arguments(p: argparse.ArgumentParser) -> None:
    _bench_arguments(p)
    p.add_argument("--configs", nargs="+", default=None, metavar="CONFIG",
                   help="model configs (shipped names or YAML files; default: model/tiny model/base)")
    p.add_argument("--batches", nargs="+", type=positive_int, default=None, metavar="B",
                   help="batch sizes, each of 4 views (default: 1 16)")


def _bench_gpu_arguments(p: argparse.ArgumentParser) -> None:
    _bench_arguments(p)
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes on the CPU (what runs without CUDA anyway): checks the code, measures no GPU")


def _no_arguments(p: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    """One row of the CLI: ``partrm-gym NAME …`` runs ``target`` ("module:function", imported only when the command
    runs, so ``--help`` and a typo answer without loading torch) on the parsed arguments; it returns the exit code."""

    name: str  # one word, or a group and a word ("bench envs")
    help: str
    target: str
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    out: str | None = "folder"  # what --out names, checked before any work: "folder", "file", "report" or None


# Groups of commands (the first word of a two-word name) and their help.
GROUPS = {
    "policy": "train / evaluate manipulation policies; the headline experiment",
    "bench": "measure speed and fidelity on this machine and print a Markdown table",
}

BENCH = "partrm_gym.app.bench"
# Every command of partrm-gym, in the order `--help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("demo", "one image + one drag -> the imagined next state beside the simulated truth",
            "partrm_gym.app.demo:main", _demo_arguments),
    Command("sim-preview", "PNG grid of an object's canonical + evaluation views in 3 states",
            "partrm_gym.app.preview:main", _preview_arguments),
    Command("datagen", "generate a PartDrag-4D-style dataset from the simulator (resumable)",
            "partrm_gym.train.datagen:main", _datagen_arguments),
    Command("verify", "check a dataset and name every missing or corrupt file", "partrm_gym.train.verify:main",
            _verify_arguments, out=None),
    Command("train", "one training stage (see configs/train/); torchrun -m partrm_gym.train for DDP",
            "partrm_gym.train.train:run", _train_arguments),
    Command("finetune-zero123pp", "fine-tune Zero123++ (local weights, GPU) to produce this project's dataset views",
            "partrm_gym.train.finetune_zero123pp:run", _finetune_arguments),
    Command("eval", "score a checkpoint against the static baseline and the GT upper bound",
            "partrm_gym.train.evaluate:main", _eval_arguments),
    Command("compare", "imagined vs simulated: the same drags in PartRM-* and PartRMSim-*",
            "partrm_gym.app.compare:main", _compare_arguments),
    Command("export-task", "write a twin's task as an image-defined task folder (PartRM-Images-v0; docs/envs.md)",
            "partrm_gym.envs.task_export:main", _export_task_arguments),
    Command("bundle", "make trained run(s) the package's default model (model/weights/default)",
            "partrm_gym.train.bundle:main", _bundle_arguments, out=None),
    Command("policy train", "PPO or SAC (Stable-Baselines3) in imagination (PartRM-*) or the twin",
            "partrm_gym.policies.agents:train_command", _policy_train_arguments),
    Command("policy eval", "success rate (95%% CI), mean return and a GIF of a policy",
            "partrm_gym.policies.evaluate:main", _policy_eval_arguments),
    Command("policy experiment", "random / scripted / planner / PPO-imagination / PPO-twin in the twin",
            "partrm_gym.policies.experiment:main", _policy_experiment_arguments),
    Command("bench all", "every benchmark below in one report", f"{BENCH}.all:bench_all", _bench_arguments,
            out="report"),
    Command("bench envs", "env reset/step speed: imagined, vector, twin", f"{BENCH}.envs:bench_envs",
            _bench_arguments, out="report"),
    Command("bench render", "rasterizer speed, forward and backward", f"{BENCH}.render:bench_render",
            _bench_arguments, out="report"),
    Command("bench model", "one forward of the world-model network per model config and batch size",
            f"{BENCH}.model:bench_model", _bench_model_arguments, out="report"),
    Command("bench sim", "PyBullet loading and rendering speed", f"{BENCH}.sim:bench_sim", _bench_arguments,
            out="report"),
    Command("bench pipeline", "dataset generation and training speed per stage", f"{BENCH}.pipeline:bench_pipeline",
            _bench_arguments, out="report"),
    Command("bench gt-splatter", "how well GT splatter images reproduce their views",
            f"{BENCH}.gt_splatter:bench_gt_splatter", _bench_arguments, out="report"),
    Command("bench rollout", "does imagination stay true over an episode (joint read-out, PSNR per step)",
            f"{BENCH}.rollout:bench_rollout", _bench_arguments, out="report"),
    Command("bench images", "environments from images alone against the twin: inferred goal, agreement, speed",
            f"{BENCH}.images:bench_images", _bench_arguments, out="report"),
    Command("bench gpu", "one CUDA device: gsplat parity and compile, bf16 lgm training, LGM weights, batched envs",
            f"{BENCH}.gpu:bench_gpu", _bench_gpu_arguments, out="report"),
    Command("bench actions", "how often each control mode's drags start on the task part",
            f"{BENCH}.actions:bench_actions", _bench_arguments, out="report"),
)


def _run(args: argparse.Namespace) -> int:
    import importlib

    command: Command = args.command_row
    if command.out == "report" and getattr(args, "out", None):
        from partrm_gym.app.bench.report import check_report_path

        check_report_path(args.out)  # before minutes of measuring, not after
    module, function = command.target.split(":")
    result = getattr(importlib.import_module(module), function)(args)
    return result if isinstance(result, int) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of user errors too (or set {DEBUG_ENV}=1)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help=f"CPU threads of torch in this process (default: ${THREADS_ENV}, else "
                             "$OMP_NUM_THREADS, else the cores available); give each of several "
                             "processes running at once 1")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS:
        group, _, name = command.name.rpartition(" ")
        if group and group not in groups:
            groups[group] = sub.add_parser(group, help=GROUPS[group]).add_subparsers(dest="action", required=True)
        p = (groups[group] if group else sub).add_parser(name, help=command.help)
        command.arguments(p)
        p.set_defaults(command_row=command)
    return parser


def _check_outputs(args: argparse.Namespace) -> None:
    out, kind = getattr(args, "out", None), args.command_row.out
    if out and kind is not None:
        (check_output_folder if kind == "folder" else check_output_file)(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        _check_outputs(args)
        set_threads(args.threads)  # every command runs with a deliberate thread count (imports torch)
        return _run(args)

    return run_reporting_user_errors(run, PROG, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
