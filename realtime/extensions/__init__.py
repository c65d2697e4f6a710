"""What a deployment adds to the relay: server-side tools, a session policy, client messages.

Loaded once per runtime from ``RELAY_TOOLS``, ``RELAY_SESSION_POLICY`` and
``RELAY_CLIENT_MESSAGES`` (after Django's apps are ready: tool modules may use models), and
again when a test changes those settings. A bad value raises ``ConfigError`` naming the
variable.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.extensions.client_messages import ClientMessages, MessageLimits, load_client_messages
from realtime.extensions.policy import PolicyFunction, load_policy
from realtime.kernel.config import RelayConfig
from realtime.tools import ToolRegistry, load_tools

MAX_TEXT_CHARS = 4000  # a system_message's text (docs/tools.md)


@dataclass(frozen=True)
class Extensions:
    source: tuple[str, str, str]  # the settings these were loaded from
    tools: ToolRegistry
    policy: PolicyFunction
    client_messages: ClientMessages

    @classmethod
    def load(cls, config: RelayConfig) -> Extensions:
        return cls(
            source=cls.source_of(config),
            tools=load_tools(config.tools),
            policy=load_policy(config.session_policy),
            client_messages=load_client_messages(
                config.client_messages, limits=MessageLimits(max_text_chars=MAX_TEXT_CHARS)
            ),
        )

    @staticmethod
    def source_of(config: RelayConfig) -> tuple[str, str, str]:
        return (config.tools, config.session_policy, config.client_messages)
