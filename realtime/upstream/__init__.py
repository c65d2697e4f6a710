"""Upstream adapters: one per API family, behind one interface the session talks to.

An adapter owns the connection to one upstream session. It opens it (connect, then the
family's handshake), translates each upstream frame into the session's neutral events
(``realtime.kernel.events``), and encodes what the session asks for (user text, an answer, a cut,
a commit) into upstream frames, which the session's outbox sends in order.

Families: ``realtime`` (the Realtime API: OpenAI GA, Azure GA and the legacy Azure preview
dialect) in ``realtime/upstream/realtime.py``; ``live`` (GPT-Live, OpenAI and Azure Foundry)
in ``realtime/upstream/live.py``. To add one, subclass ``UpstreamAdapter`` and
list it in ``adapter_for`` (see docs/architecture.md).
"""

from __future__ import annotations

from realtime.kernel.config import RelayConfig
from realtime.tools import ToolRegistry
from realtime.upstream.adapter import Unsupported, UpstreamAdapter
from realtime.upstream.clients import UpstreamClients
from realtime.upstream.live import LiveAdapter
from realtime.upstream.realtime import RealtimeAdapter

__all__ = ["Unsupported", "UpstreamAdapter", "UpstreamClients", "adapter_for"]


def adapter_for(
    config: RelayConfig, clients: UpstreamClients, tools: ToolRegistry | None = None
) -> UpstreamAdapter:
    adapters: dict[str, type[UpstreamAdapter]] = {
        RealtimeAdapter.api: RealtimeAdapter,
        LiveAdapter.api: LiveAdapter,
    }
    return adapters[config.api](config, clients, tools)
