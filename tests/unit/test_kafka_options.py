"""Kafka client options: bootstrap servers required, TLS and SASL settings passed through."""

from __future__ import annotations

import ssl

import pytest

from infrastructure.kafka_options import KafkaNotConfiguredError, kafka_client_options
from infrastructure.settings import Settings


def test_no_bootstrap_servers_is_refused() -> None:
    with pytest.raises(KafkaNotConfiguredError):
        kafka_client_options(Settings(kafka_bootstrap_servers=None))


def test_plaintext_by_default() -> None:
    options = kafka_client_options(Settings(kafka_bootstrap_servers="k1:9092,k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_passes_through() -> None:
    settings = Settings(
        kafka_bootstrap_servers="k1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="waymark",
        kafka_sasl_password="pw",  # noqa: S106 - a test value
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("waymark", "pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_tls_builds_no_tls_context() -> None:
    settings = Settings(
        kafka_bootstrap_servers="k1:9092",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",  # noqa: S106 - a test value
    )
    assert "ssl_context" not in kafka_client_options(settings)
