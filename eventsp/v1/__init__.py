"""Generated protobuf and gRPC modules of the eventsp API, version 1.

Do not edit the ``*_pb2*`` files: change ``protos/eventsp/v1/*.proto`` and run ``make protos``.
Importing this package imports protobuf; the ``*_pb2_grpc`` modules also import grpc.
"""
