"""aiokafka client options from the settings: bootstrap servers, TLS and SASL pass-through.

Every Kafka client Waymark builds takes these, so pointing it at a secured cluster is a
matter of settings (`KAFKA_BOOTSTRAP_SERVERS`, `WAYMARK_KAFKA_*`), never code.
"""

from __future__ import annotations

from typing import Any

from infrastructure.settings import Settings


class KafkaNotConfiguredError(RuntimeError):
    """KAFKA_BOOTSTRAP_SERVERS is not set, and this process needs a broker."""


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by AIOKafkaConsumer and AIOKafkaProducer."""
    if not settings.kafka_bootstrap_servers:
        raise KafkaNotConfiguredError("KAFKA_BOOTSTRAP_SERVERS is not set")
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    if "SSL" in settings.kafka_security_protocol.upper():
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=_text(settings.kafka_ssl_cafile),
            certfile=_text(settings.kafka_ssl_certfile),
            keyfile=_text(settings.kafka_ssl_keyfile),
        )
    return options


def _text(path: object) -> str | None:
    return None if path is None else str(path)
