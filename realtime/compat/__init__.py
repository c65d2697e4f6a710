"""The one home of the relay's reaches into framework and SDK internals.

Every patch is a ``patching.Patch``: it names what it changes and the distributions it was
written against, checks their shape when it is installed (signatures, attributes, a probe of
behaviour on in-memory objects — never their source text) and, if anything does not fit,
logs ONE warning naming the package and version and stays off: the relay keeps working on
the plain path. ``relay_compat_patch_active{patch=…}`` (Prometheus) shows which are on.

They are installed where the server is built — ``relay_site/application.py`` (every ASGI
server, ``manage.py serve`` included) and ``serve`` itself for its request deadlines — not
by every ``manage.py`` command. ``pyproject.toml`` bounds the versions they were written
against (daphne, Twisted, autobahn, websockets, openai).

Patches (module: patch names):

- ``daphne``: ``daphne_close_codes`` — daphne may send the RFC 6455 server close codes
  1008/1009/1011/1012;
- ``daphne_guards``: ``daphne_frame_guard`` — oversized messages end in ``frame_too_large`` +
  1009 without being buffered; ``twisted_request_deadlines`` — deadlines against slow and
  silent HTTP clients (``serve`` only);
- ``daphne_fastpath``: ``daphne_fastpath`` — audio frames in and replies out without the
  per-message ASGI layers; ``twisted_eager_writes`` — socket writes without Twisted's
  buffering when nothing is queued; ``twisted_direct_reads`` — reads without the log-context
  wrapper;
- ``autobahn``: ``autobahn_lazy_config_log`` — autobahn's per-connection settings dump
  formatted only when DEBUG logging is on;
- ``masks``: ``websockets_buffered_masks`` — upstream frame masks from a buffered CSPRNG;
- ``sdk``: ``openai_raw_socket`` — frames straight onto the SDK connection's websocket
  (decided per connection; the SDK's public API otherwise);
- ``daphne_server``: ``daphne_cli_application``, ``daphne_drain_hooks``,
  ``twisted_accept_before_close``, ``daphne_connection_table`` — what ``serve`` and the
  drain ask of daphne's command line, server and Twisted's listening ports.

Not patches (no framework internals changed), kept here because they lean on a framework's
behaviour: ``consumer`` (a Channels consumer base without the per-message task and thread
hop), ``cancellation`` (honour a cancellation an await swallowed: CPython 3.11
``wait_for``), ``websockets`` (a logging filter that redacts keys from websockets' DEBUG
handshake dump; installed wherever upstream clients are built), ``redis_layer`` (the
channels-redis layer with the relay's pools: a subclass overriding ``create_pool`` and
``brpop_timeout``) and ``redis_pools`` (Redis pools with timeouts and a cap, and the outage
reporter and breaker every Redis use shares). ``tests/compat`` tests each by behaviour.
"""

from __future__ import annotations

from realtime.compat.patching import Patch, install


def server_patches() -> tuple[Patch, ...]:
    """The patches of a process that serves the relay, in install order."""
    from realtime.compat import (
        autobahn_dump,
        daphne_close_codes,
        daphne_fastpath,
        daphne_guards,
        masks,
    )

    return (
        daphne_close_codes.CLOSE_CODES,
        daphne_guards.FRAME_GUARD,
        masks.BUFFERED_MASKS,
        daphne_fastpath.FASTPATH,
        daphne_fastpath.EAGER_WRITES,
        daphne_fastpath.DIRECT_READS,
        autobahn_dump.LAZY_CONFIG_LOG,
    )


def install_server_patches() -> dict[str, bool]:
    """Install every server patch that fits (once per process); name → active."""
    return {patch.name: install(patch) for patch in server_patches()}
