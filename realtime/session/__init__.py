"""The session core: ``RelaySession`` (``core.py``), its collaborators, and its ports
(``ports.py``: the client it talks to, what admission gave it, the worker's roster of live
sessions) and client events (``client_events.py``).

Nothing is imported here, so an edge's encoder can import ``client_events`` without loading
the session core (and Django's models with it).
"""
