"""Hybrid-spiking Legendre Memory Units (Voelker, Rasmussen, Eliasmith 2020), trained in torch.

- ``eventsp.train.lmu.memory``: Legendre ``A``/``B``, zero-order hold, the impulse response and
  the memory in parallel (FFT convolution) and sequential form.
- ``eventsp.train.lmu.quantizer``: the quantized activation with temporally diffused error
  (``v += a*dt; n = floor(v); v -= n; out = n/dt``), its parallel form, the ``dt`` schedule
  from non-spiking to spiking, and the paper's bit measures.
- ``eventsp.train.lmu.model``: :class:`HybridLMU` and :class:`LMUConfig`.
- ``eventsp.train.lmu.export``: the runtime graph (``LMUMemory``, ``Dense``, ``MultiSpike``,
  ``Readout``) and ``.esp`` export.
- ``eventsp.train.lmu.train``: the psMNIST trainer (``python -m eventsp.train.lmu.train``,
  or under ``torchrun``).
"""

from eventsp.train.lmu.memory import (
    impulse_response,
    legendre_ab,
    memory_parallel,
    memory_sequential,
    zoh,
)
from eventsp.train.lmu.model import HybridLMU, LMUConfig
from eventsp.train.lmu.quantizer import (
    BitsAccumulator,
    DtSchedule,
    activity_bits,
    quantize_parallel,
    quantize_sequential,
    straight_through,
)

__all__ = [
    "BitsAccumulator",
    "DtSchedule",
    "HybridLMU",
    "LMUConfig",
    "activity_bits",
    "impulse_response",
    "legendre_ab",
    "memory_parallel",
    "memory_sequential",
    "quantize_parallel",
    "quantize_sequential",
    "straight_through",
    "zoh",
]
