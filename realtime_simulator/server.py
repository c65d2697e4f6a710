"""The WebSocket server: routing, auth, handshake faults and the Simulator facade."""

from __future__ import annotations

import collections
import contextlib
import json
import weakref
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .handshake_log import HANDSHAKE_LOG
from .records import ConnectionRecord, Faults
from .session import Session

if TYPE_CHECKING:
    from .live.session import LiveSession

ROUTES = {
    "/v1/realtime": "openai",
    "/openai/v1/realtime": "azure_ga",
    "/openai/realtime": "azure_preview",
    "/v1/live/sessions": "openai_live",
    "/openai/v1/live/sessions": "azure_live",
}
LIVE_ROUTES = {"openai_live", "azure_live"}
TRANSCRIPT_QUERY = "sim_transcript"  # GPT-Live scripted user words, "|"-separated
TRANSCRIPT_HEADER = "x-sim-transcript"
# Per-connection records (what each connection sent and received, for tests and
# inspection) are kept for the newest connections only: a long-running simulator stays flat.
DEFAULT_KEEP_RECORDS = 200
MAX_MESSAGE_BYTES = 22 * 1024 * 1024  # a 15 MiB append, base64-encoded, plus JSON
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}  # fmt: skip


@dataclass
class _Pending:
    record: ConnectionRecord
    faults: Faults
    model: str
    transcripts: list[str]


def _json_response(status: int, message: str, type_: str, code: str | None) -> Response:
    body = json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status, _REASONS.get(status, "Error"), headers, body)


class Simulator:
    def __init__(
        self,
        api_key: str | None = None,
        pace: str = "realtime",
        echo: bool = False,
        session_max_seconds: float = 3600.0,
        reply_text: str | None = None,
        live_usage_interval_s: float | None = 10.0,
        keep_records: int | None = DEFAULT_KEEP_RECORDS,
    ) -> None:
        if pace not in ("realtime", "fast"):
            raise ValueError("pace must be 'realtime' or 'fast'")
        self.api_key = api_key
        self.pace = pace
        self.echo = echo
        self.session_max_seconds = session_max_seconds
        self.reply_text = reply_text
        self.live_usage_interval_s = live_usage_interval_s
        if keep_records is not None and keep_records < 1:
            raise ValueError("keep_records must be at least 1 (or None: keep every record)")
        self.keep_records = keep_records
        self.host = "127.0.0.1"
        self.port = 0
        # The newest ``keep_records`` connections' records, oldest first (None: all of them).
        self.connections: list[ConnectionRecord] = []
        self._faults: collections.deque[Faults] = collections.deque()
        self._transcripts: collections.deque[list[str]] = collections.deque()
        self._server: Server | None = None
        # Handshakes accepted whose handler has not run yet; weak, so a connection that fails
        # between the 101 and its handler leaves nothing behind.
        self._pending: weakref.WeakKeyDictionary[ServerConnection, _Pending] = (
            weakref.WeakKeyDictionary()
        )
        self._sessions: set[Session | LiveSession] = set()

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def next_faults(self, faults: Faults) -> None:
        """Queue faults for the next connection attempt (FIFO, one per call)."""
        self._faults.append(faults)

    def next_live_transcripts(self, texts: list[str]) -> None:
        """Script what the user "says" on the next GPT-Live connection (FIFO, one list per
        call): its first detected utterance transcribes to ``texts[0]``, and so on; later ones
        get the default "Simulated transcript of N seconds of speech." (no ASR here)."""
        self._transcripts.append(list(texts))

    async def start(self, host: str = "127.0.0.1", port: int = 0, reuse_port: bool = False) -> None:
        """Listen; ``reuse_port`` lets several simulator processes share one port (the kernel
        spreads connections over them: ``runsimulator --processes N``)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            server_header="realtime-simulator",
            reuse_port=reuse_port,
            logger=HANDSHAKE_LOG,
            backlog=2048,  # a relay's connect storm arrives at once, as at the real service
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = host, int(sockname[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        for session in list(self._sessions):
            session.closing = True
            session.server_closed = True
        self._server.close()  # closes every connection with 1001 (going away)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- handshake ------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        record = ConnectionRecord(path=parts.path, query=query, headers=headers)
        self._keep(record)
        queued = self._faults.popleft() if self._faults else Faults()
        faults = queued.merged(Faults.from_request(query, headers))
        record.faults = faults
        record.route = ROUTES.get(parts.path.rstrip("/") or "/")  # type: ignore[assignment]
        if record.route is None:
            return self._refuse(record, 404, "Not found.", "invalid_request_error", None)
        beta = "realtime=v1" in headers.get("openai-beta", "").replace(" ", "")
        record.dialect = "beta" if beta or record.route == "azure_preview" else "ga"
        if record.route in LIVE_ROUTES:
            record.dialect = "live"
        if self.api_key is not None and not self._authorized(headers):
            return self._refuse(
                record, 401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error", "invalid_api_key",
            )  # fmt: skip
        if faults.refuse_status:
            status = faults.refuse_status
            type_ = "server_error" if status >= 500 else "invalid_request_error"
            return self._refuse(record, status, "Simulated handshake refusal.", type_, "sim_fault")
        transcripts: list[str] = []
        if record.dialect == "live":
            if "model" in query:  # the SDK: the model belongs in session.start, not the URL
                return self._refuse(
                    record, 400, "The model goes in session.start, not in the URL.",
                    "invalid_request_error", "unknown_parameter",
                )  # fmt: skip
            next_texts = self._transcripts.popleft() if self._transcripts else []
            scripted = query.get(TRANSCRIPT_QUERY) or headers.get(TRANSCRIPT_HEADER)
            transcripts = scripted.split("|") if scripted else next_texts
            model = ""
        elif record.route == "azure_preview":
            model = query.get("deployment") or "gpt-4o-realtime-preview"
        else:
            model = query.get("model") or "gpt-realtime"
        record.status = 101
        self._pending[connection] = _Pending(record, faults, model, transcripts)
        return None

    def _keep(self, record: ConnectionRecord) -> None:
        self.connections.append(record)
        excess = len(self.connections) - (self.keep_records or len(self.connections))
        if excess > 0:
            del self.connections[:excess]  # a live session keeps its own record

    def _refuse(
        self, record: ConnectionRecord, status: int, message: str, type_: str, code: str | None
    ) -> Response:
        record.status = status
        record.closed.set()
        return _json_response(status, message, type_, code)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if headers.get("api-key") == self.api_key:
            return True
        auth = headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer ") :].strip() == self.api_key

    # ---- connection -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        pending = self._pending.pop(ws)
        record, faults = pending.record, pending.faults
        session: Session | LiveSession
        if record.dialect == "live":
            # Imported here: it needs openai.types.live, which older SDKs lack.
            from .live.session import LiveSession

            session = LiveSession(
                ws, record, faults, pace=self.pace, echo=self.echo,
                session_max_seconds=self.session_max_seconds, reply_text=self.reply_text,
                transcripts=pending.transcripts, usage_interval_s=self.live_usage_interval_s,
            )  # fmt: skip
        else:
            session = Session(
                ws, record, faults, model=pending.model, pace=self.pace, echo=self.echo,
                session_max_seconds=self.session_max_seconds, reply_text=self.reply_text,
            )  # fmt: skip
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            with contextlib.suppress(Exception):
                await ws.close()
            record.close_code = _close_code(ws)
            record.closed_by = _closed_by(ws, session.server_closed)
            record.closed.set()


def _close_code(ws: ServerConnection) -> int | None:
    protocol = ws.protocol
    # The code of whoever closed first: ours if we initiated, else the peer's.
    if protocol.close_rcvd_then_sent is False and protocol.close_sent is not None:
        return int(protocol.close_sent.code)
    if protocol.close_rcvd is not None:
        return int(protocol.close_rcvd.code)
    return None if ws.close_code is None else int(ws.close_code)


def _closed_by(ws: ServerConnection, server_closed: bool) -> Any:
    initiated_by_peer = ws.protocol.close_rcvd_then_sent
    if initiated_by_peer is True:
        return "client"
    if initiated_by_peer is False or server_closed:
        return "server"
    return "client"
