"""``python -m partrm_gym.train CONFIG`` (what ``torchrun`` launches): one training stage, with the same one-line
errors as ``partrm-gym train``."""

from partrm_gym.errors import run_reporting_user_errors
from partrm_gym.train.train import main

raise SystemExit(run_reporting_user_errors(main, "partrm-gym train"))
