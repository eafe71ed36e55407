"""Scripted and planning policies, Stable-Baselines3 training and evaluation."""
