from tests.relay.conftest import relay_config, simulator  # noqa: F401
