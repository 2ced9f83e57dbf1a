"""Token authentication and TLS, through real sockets."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from eventsp.clients.client import Client, ServiceCallError
from eventsp.services.config import ServerConfig

TOKEN = "s3cret-token"


@pytest.fixture
def authed(start_server, audio_task):
    return start_server(ServerConfig(token=TOKEN), [audio_task])


@pytest.mark.parametrize(("token", "fragment"), [(None, "needs a token"), ("wrong", "not valid")])
def test_missing_or_wrong_token_is_unauthenticated(authed, token, fragment):
    with Client(authed.address, token=token) as client:
        for call in (
            client.list_models,
            client.metrics,
            lambda: list(client.stream_audio([np.zeros(10)], sample_rate_hz=16000)),
            lambda: client.process_recording(b"\0" * 5, filename="a.bin"),
        ):
            with pytest.raises(ServiceCallError) as info:
                call()
            assert info.value.code == "UNAUTHENTICATED"
            assert fragment in info.value.message
            assert TOKEN not in info.value.message
        # Health checks stay open to load balancers.
        assert client.health() == "SERVING"
    assert authed.server.metrics.streams_total == 0  # refused before any handler ran


def test_right_token_is_accepted(authed, audio_task):
    with Client(authed.address, token=TOKEN) as client:
        assert [m.name for m in client.list_models()] == ["test-loudness"]
        responses = list(client.stream_audio([np.full(160, 0.5)], sample_rate_hz=16000))
        assert responses[0].keywords[0].label == "loud"
    assert audio_task.live == 0


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_with_a_self_signed_certificate(start_server, audio_task, self_signed):
    cert, key = self_signed
    running = start_server(ServerConfig(tls_cert=cert, tls_key=key, token=TOKEN), [audio_task])
    address = f"localhost:{running.port}"
    with Client(address, tls_ca=cert, token=TOKEN, timeout_s=10) as client:
        client.wait_serving()
        responses = list(client.stream_audio([np.full(160, 0.5)], sample_rate_hz=16000))
        assert responses[0].keywords[0].label == "loud"
    # A plaintext client cannot talk to the TLS port.
    with Client(address, token=TOKEN, timeout_s=3) as client, pytest.raises(ServiceCallError):
        client.list_models()


def test_tls_config_needs_both_files(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ValueError, match="give both"):
        ServerConfig(tls_cert=cert)
    with pytest.raises(ValueError, match="not a file"):
        ServerConfig(tls_cert=cert, tls_key=tmp_path / "missing.pem")
