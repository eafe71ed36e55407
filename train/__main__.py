"""``python -m partrm_gym.train CONFIG`` (what ``torchrun`` launches): one training stage."""

from partrm_gym.train.train import main

raise SystemExit(main())
