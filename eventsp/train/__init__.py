"""PyTorch trainers that produce eventsp models (needs the ``train`` extra: torch, tqdm, ...).

- ``eventsp.train.loop``: shared infrastructure (torchrun/DDP set-up, data loaders,
  progress bars, atomic checkpoints and resume, metric logs and training-curve plots).
- ``eventsp.train.ptl``: progressive tandem learning (ANN-to-SNN conversion, Wu et al. 2021).
- ``eventsp.train.data``: dataset readers for the trainers.

Nothing under ``eventsp.train`` is imported by the runtime.
"""
