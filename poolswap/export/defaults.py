"""The export's names and defaults, defined once (no heavy imports: the CLI reads them for ``--help``)."""

DOMAIN = "poolswap"
OP_NAME = "SoftPool"
DOMAIN_VERSION = 1
#: The function bodies (see :mod:`poolswap.export._function`).
BODIES = ("fast", "exact")
#: The body written unless asked otherwise: stable for any input.
DEFAULT_BODY = "exact"
#: The default-domain opset the export targets.
DEFAULT_OPSET = 20
#: AveragePool's ``dilations`` and ReduceMax's ``axes`` input need opset 19.
MIN_OPSET = 19
#: The runtimes ``poolswap validate`` compares with PyTorch (see :mod:`poolswap.deploy.runtimes`).
RUNTIMES = ("ort", "ort-library", "reference", "openvino")
