"""Client programs and the Python client library (installed as ``eventsp.clients``)."""
