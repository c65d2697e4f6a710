"""Security tests reuse the relay fixtures: the in-process simulator and the relay pointed at it."""

from tests.relay.conftest import relay_config, simulator  # noqa: F401
