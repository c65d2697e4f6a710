"""The session core: ``RelaySession`` and the client port it talks through."""

from realtime.session.core import ClientPort, RelaySession
from realtime.session.states import State

__all__ = ["ClientPort", "RelaySession", "State"]
