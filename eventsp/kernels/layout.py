"""The compiled program's layout: opcodes, columns of the ``code`` table, counter columns.

A network compiles to a *program* (see ``eventsp.runtime.program``): an ``int64`` table
``code`` with one row per operation and :data:`NCOL` columns, a flat ``float32`` parameter
buffer ``params``, and per stream a flat activation buffer ``acts`` and a flat state buffer
``values``. Every kernel of ``eventsp.kernels`` takes one row of ``code`` and those buffers, so
one jitted call (:func:`eventsp.kernels.program.execute`) runs a whole network step.

Columns (``-1`` where unused):

===========  ===============================================================================
``OP``       opcode (below)
``IN``       offset of the input in ``acts``; ``N_IN`` its size
``OUT``      offset of the output in ``acts``; ``N_OUT`` its size
``P0``       offset in ``params`` of the main weights (layout per op, see the kernels)
``P1``       offset of the bias, or ``-1`` for none
``P2``       offset of extra parameters (scatter-layout conv weights, neuron constants)
``S0``       offset of this op's state in ``values``
``IN2``      offset of the second input (``ADD``); for DENSE, CONV2D, POOL fed by an IF/LIF,
             the offset of that neuron's spike list (``-1``: scan the input instead)
``C H W``    input geometry (spatial data is stored ``(H, W, C)``, see ``conv.py``);
             ``OC HO WO`` output geometry
             (for DENSE, ``WO`` is the width of its weight rows and output slot: ``N_OUT``,
             or padded with zeros to whole vectors, see ``runtime.program._dense_row``)
``KH KW``    kernel size; ``SH SW`` stride; ``PH PW`` padding; ``G`` groups
``MODE``     op-specific integer: readout mode; for DENSE, CONV2D, CCONV1D the float offset in
             ``acts`` of an ``N_IN``-long scratch, viewed as int32 (active-input indices);
             for IF/LIF the offset of the spike list it writes (``-1``: none)
===========  ===============================================================================

These are module constants: Numba freezes them into the kernels at compile time. Changing one
requires updating ``KERNEL_SOURCES_SHA256`` in ``eventsp/kernels/program.py`` (see there).
"""

from __future__ import annotations

# Opcodes.
NOP = 0
INPUT = 1
OUTPUT = 2
DENSE = 3
CONV2D = 4
CCONV1D = 5
POOL = 6  # P0 == 1: average, 0: sum
FLATTEN = 7  # (H, W, C) storage -> the graph's (C, H, W) order
ADD = 8
IF = 9
LIF = 10
MSPIKE = 11
RELU = 12
LMU = 13
READOUT = 14

# Columns of the code table.
OP = 0
IN = 1
N_IN = 2
OUT = 3
N_OUT = 4
P0 = 5
P1 = 6
P2 = 7
S0 = 8
IN2 = 9
C = 10
H = 11
W = 12
OC = 13
HO = 14
WO = 15
KH = 16
KW = 17
SH = 18
SW = 19
PH = 20
PW = 21
G = 22
MODE = 23
NCOL = 24

# Readout modes (column MODE of READOUT).
READ_SUM = 0
READ_MEAN = 1
READ_LAST = 2

# Counter columns, per stream and per op (float64).
ACS = 0  # effective accumulates: nonzero binary inputs x fan-out
MACS = 1  # effective multiply-accumulates: nonzero non-binary inputs x fan-out
DENSE_OPS = 2  # every multiply-accumulate a dense implementation would do
NONZERO = 3  # nonzero outputs (neurons and pass-through activations)
TOTAL = 4  # outputs computed
SPIKES = 5  # spikes emitted (for MultiSpike: the sum of the counts n)
NCOUNT = 6

# Conv layers use the event-driven path when the fraction of nonzero inputs in this frame is
# below this (both paths add in the same order, so the result is the same bit for bit).
SPARSE_MAX_DENSITY = 0.5
