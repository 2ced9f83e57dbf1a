"""The eventsp gRPC service (installed as ``eventsp.services``; needs the ``serve`` extra)."""
