"""Event-camera I/O and streaming encoders: one event contract, readers, frames.

- :mod:`eventsp.events.contract`: the event dtype (tonic's, t in µs), sensor size, validation,
  the time-order policy for streams.
- :mod:`eventsp.events.formats`, :mod:`eventsp.events.readers`: recognise and stream recordings
  (N-MNIST, AEDAT2, AEDAT4, EVT2, EVT3, .dat, numpy, HDF5) in bounded packets.
- :mod:`eventsp.events.filters`, :mod:`eventsp.events.encoders` (kernels in
  :mod:`eventsp.events.kernels`): streaming crop, downsample, denoise and refractory filters,
  and windowed frames (counts, binary, voxel grids, time surfaces) equal to tonic's offline ones.
"""

from eventsp.events.contract import (
    EVENT_DTYPE,
    EventContractError,
    EventFormatError,
    EventPacket,
    OrderState,
    SensorSize,
    as_events,
    check_sensor_size,
    concat_events,
    empty_events,
    init_order,
    order_packet,
    take_events,
    validate_events,
)
from eventsp.events.encoders import EncoderState, FrameEncoder, Representation, encode_stream
from eventsp.events.filters import (
    Crop,
    Denoise,
    Downsample,
    Filter,
    RefractoryPeriod,
    center_crop,
)
from eventsp.events.readers import Recording, open_recording, read_events

__all__ = [
    "EVENT_DTYPE",
    "Crop",
    "Denoise",
    "Downsample",
    "EncoderState",
    "EventContractError",
    "EventFormatError",
    "EventPacket",
    "Filter",
    "FrameEncoder",
    "OrderState",
    "Recording",
    "RefractoryPeriod",
    "Representation",
    "SensorSize",
    "as_events",
    "center_crop",
    "check_sensor_size",
    "concat_events",
    "empty_events",
    "encode_stream",
    "init_order",
    "open_recording",
    "order_packet",
    "read_events",
    "take_events",
    "validate_events",
]
