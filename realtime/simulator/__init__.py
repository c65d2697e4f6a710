"""Offline simulator of the OpenAI / Azure OpenAI Realtime WebSocket API."""

from .records import ConnectionRecord, Faults
from .server import Simulator

__all__ = ["ConnectionRecord", "Faults", "Simulator"]
