"""Mutual TLS to the broker: settings refuse an incomplete configuration at start-up, and a
complete one gives every Kafka client of the service the same TLS context."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pydantic
import pytest

from mutualaid.runtime import ServiceSettings
from mutualaid.runtime.kafka import connection_options, producer_options

pytestmark = pytest.mark.domain


def test_plaintext_by_default() -> None:
    options = connection_options(ServiceSettings())
    assert options["security_protocol"] == "PLAINTEXT" and options["ssl_context"] is None


def test_ssl_without_its_files_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="kafka_ssl_cafile"):
        ServiceSettings(kafka_security_protocol="SSL")
    with pytest.raises(pydantic.ValidationError, match="kafka_ssl_certfile"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=__file__,
                        kafka_ssl_certfile=tmp_path / "missing.pem",
                        kafka_ssl_keyfile=__file__)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_ssl_settings_give_a_client_certificate_context(tmp_path: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "1", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "svc.key", "-out", "svc.csr",
        "-subj", "/CN=membership")
    run("x509", "-req", "-in", "svc.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "svc.pem", "-days", "1")
    settings = ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path /
                               "ca.pem", kafka_ssl_certfile=tmp_path / "svc.pem",
                               kafka_ssl_keyfile=tmp_path / "svc.key")
    options = producer_options(settings)
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL" and isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
