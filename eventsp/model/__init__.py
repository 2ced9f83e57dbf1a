"""Model graphs and model files.

``eventsp.model.graph`` defines the nodes and :class:`Graph`; the file format (``.esp``) and NIR
interchange live in ``eventsp.model.format`` and ``eventsp.model.nir``.
"""

from eventsp.model.graph import (
    IF,
    LIF,
    NODE_TYPES,
    Add,
    AvgPool2d,
    CausalConv1d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    GraphError,
    Identity,
    Input,
    LMUMemory,
    MultiSpike,
    Node,
    Output,
    Readout,
    ReLU,
    SumPool2d,
    node_from_dict,
)

# Graph names. The file-format names are appended below this list.
__all__ = [
    "IF",
    "LIF",
    "NODE_TYPES",
    "Add",
    "AvgPool2d",
    "CausalConv1d",
    "Conv2d",
    "Dense",
    "Flatten",
    "Graph",
    "GraphError",
    "Identity",
    "Input",
    "LMUMemory",
    "MultiSpike",
    "Node",
    "Output",
    "ReLU",
    "Readout",
    "SumPool2d",
    "node_from_dict",
]

# The model file (``.esp``). NIR interchange stays in ``eventsp.model.nir`` (it needs the
# ``nir`` extra at call time).
from eventsp.model.format import (
    Model,
    ModelFormatError,
    load_model,
    save_model,
    validate_model,
)

__all__ += ["Model", "ModelFormatError", "load_model", "save_model", "validate_model"]
