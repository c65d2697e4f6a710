"""The session core: ``RelaySession`` and its ports (the client it talks to, what admission
gave it, the worker's roster of live sessions)."""

from realtime.session.core import RelaySession
from realtime.session.ports import Admission, ClientPort, Roster
from realtime.session.states import State

__all__ = ["Admission", "ClientPort", "RelaySession", "Roster", "State"]
