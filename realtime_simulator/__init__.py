"""Offline simulator of the OpenAI / Azure OpenAI Realtime and GPT-Live WebSocket APIs."""

from .records import ConnectionRecord, Faults
from .server import Simulator

__all__ = ["ConnectionRecord", "Faults", "Simulator"]
