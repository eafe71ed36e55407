"""The PartRM network, drag embedding and propagation, multi-view sources, checkpoints."""
