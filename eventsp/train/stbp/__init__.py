"""STBP-tdBN: directly trained deep spiking ResNets (Zheng et al., AAAI 2021), in PyTorch.

- :mod:`~eventsp.train.stbp.neurons`: LIF with hard reset and a rectangular surrogate gradient,
  threshold-dependent batch norm (tdBN).
- :mod:`~eventsp.train.stbp.model`: spiking ResNet blocks and configurations (``ARCHS``), from
  a small N-MNIST net up to ResNet-19.
- :mod:`~eventsp.train.stbp.train`: the training run (``python -m eventsp.train.stbp``;
  torchrun/DDP, progress bars, checkpoints and resume, curves).
- :mod:`~eventsp.train.stbp.export`: fold tdBN into the convolutions and write an ``.esp``
  runtime model; :func:`~eventsp.train.stbp.export.to_graph` gives the graph alone.
- :mod:`~eventsp.train.stbp.evaluate`: accuracy, early answers and effective synaptic
  operations of an exported model on the held-out N-MNIST split, measured on the runtime.
"""
