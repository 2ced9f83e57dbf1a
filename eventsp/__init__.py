"""eventsp: streaming spiking neural networks for live sensor streams.

The package is laid out by role:

- ``eventsp.runtime``: the streaming runtime (numpy + Numba), per-stream state as plain data.
- ``eventsp.kernels``: the jitted kernels the runtime is built from.
- ``eventsp.model``: the model file format, its loader and validator, NIR interchange.
- ``eventsp.events``: event-camera I/O and streaming encoders.
- ``eventsp.audio``: audio I/O and the streaming front-end.
- ``eventsp.train``: the PyTorch trainers (needs the ``train`` extra).
- ``eventsp.services`` / ``eventsp.clients``: the gRPC server and its clients (``serve`` extra).

Importing ``eventsp`` imports neither torch nor grpc; the edge runtime needs numpy and numba only.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eventsp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
