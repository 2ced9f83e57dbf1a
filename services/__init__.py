"""The eventsp gRPC service (installed as ``eventsp.services``; needs the ``serve`` extra).

- :mod:`~eventsp.services.server`: ``create_server(config) -> (server, port)``, ``serve``;
- :mod:`~eventsp.services.config`: :class:`ServerConfig` (limits, auth, TLS, grace period);
- :mod:`~eventsp.services.tasks`: the streaming-task protocol every served model implements;
- :mod:`~eventsp.services.adapters`: model files -> tasks on the runtime and the apps;
- :mod:`~eventsp.services.servicer`, :mod:`~eventsp.services.convert`: gRPC plumbing and
  protobuf <-> numpy converters; :mod:`~eventsp.services.errors`: the status-code mapping;
- :mod:`~eventsp.services.auth`, :mod:`~eventsp.services.metrics`,
  :mod:`~eventsp.services.logs`, :mod:`~eventsp.services.recordings`,
  :mod:`~eventsp.services.background` (a server on a thread, for demos and embedding).
"""
