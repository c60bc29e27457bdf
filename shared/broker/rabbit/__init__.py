"""RabbitMQ adapter (aio-pika)."""

from shared.broker.rabbit.broker import RabbitBroker
from shared.broker.rabbit.names import RabbitNames

__all__ = ["RabbitBroker", "RabbitNames"]
