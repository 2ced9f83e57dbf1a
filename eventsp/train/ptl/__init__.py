"""Progressive tandem learning (Wu et al., TPAMI 2021): ANN-to-SNN conversion for the runtime.

- ``network``: the spike-count network with tandem layers, IF neurons, fan-in masks and
  per-layer fixed-point weights; its exact spiking simulation.
- ``schedule``: the progressive stages and the adaptive (patience) scheduler.
- ``trainer``: the training driver (DDP under torchrun, checkpoints, logs).
- ``export``: the fixed-point ``eventsp.model`` graph for the runtime.
"""
