"""Twilio on the phone edge: the voice webhook (``POST /twilio/voice``) and Media Streams' wire.

The webhook is the number's "A call comes in" URL. It checks ``X-Twilio-Signature`` with
``TWILIO_AUTH_TOKEN`` (the ``twilio`` library's ``RequestValidator``, over the URL Twilio
called: ``RELAY_PUBLIC_URL`` + the path, else the request's own URL as the trusted proxies
give it, ``realtime/edge/proxy.py``), asks the session policy whether this caller may call
(``scope["relay_phone"]``) and the limits whether they would refuse the stream (the daily
budget, connects a minute, open sessions: ``budgets.refusal_ahead``, counting nothing) — a
refused caller hears why (``<Say>…</Say><Hangup/>``) — and answers TwiML
``<Connect><Stream url="wss://…/twilio/media">``
with a single-use, short-lived token bound to the call (``CallSid``) as a ``<Parameter>``:
Twilio hands it back in the stream's ``start`` event (``realtime/edge/phone.py``). Without
``TWILIO_AUTH_TOKEN`` the phone edge is off (404).

The Media Streams messages (``connected``, ``start``, ``media``, ``mark``, ``dtmf``, ``stop``
in; ``media``, ``mark``, ``clear`` out) are parsed and built here and nowhere else, so another
telephony provider is another module like this one (docs/phone.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from realtime.extensions.policy import PolicyError, resolve_policy
from realtime.guards import budgets
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import Ending
from realtime.ops import metrics

log = logging.getLogger("realtime.edge.phone")

PROVIDER = "twilio"
TOKEN_PARAMETER = "relay_token"  # the <Parameter> that carries the stream token
MEDIA_PATH = "/twilio/media"
REFUSED = "Sorry, this number cannot take your call. Goodbye."
UNAVAILABLE = "Sorry, the assistant is not available right now. Please call again later."
SPENT = "Sorry, the assistant has used up today's budget. Please call again tomorrow."
BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes."
CALLED_TOO_OFTEN = (
    "Sorry, this number has called too often in the last minute. Please call again shortly."
)
FRAME_BYTES = 160  # 20 ms of G.711 μ-law at 8 kHz


@dataclass(frozen=True)
class Call:
    """One phone call as the relay knows it (numbers unmasked: never logged as they are)."""

    provider: str
    call_sid: str
    caller: str
    called: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Call | None:
        try:
            data = json.loads(text)
            return cls(**{k: str(data[k]) for k in ("provider", "call_sid", "caller", "called")})
        except (ValueError, TypeError, KeyError):
            return None

    def scope_entry(self) -> dict[str, str]:
        """``scope["relay_phone"]``: what the session policy is given about the call."""
        return asdict(self)


def mask(number: str, show: bool = False) -> str:
    """A phone number as logs and the admin show it: ``+4477******123`` (the country and area
    code and the last three digits); ``show`` (``RELAY_PHONE_SHOW_NUMBERS``) keeps it whole."""
    number = "".join(ch for ch in number if ch.isalnum() or ch in "+:")[:32]
    if show:
        return number
    if len(number) < 8:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 8) + number[-3:]


def binding(call_sid: str) -> str:
    """What a stream token is bound to: the call it was issued for."""
    return f"phone:{PROVIDER}:{call_sid}"


# ---- the webhook -----------------------------------------------------------------------------


def signed_url(request: HttpRequest, config: RelayConfig) -> str:
    """The URL Twilio requested (and signed): ``RELAY_PUBLIC_URL`` + the path and query, else
    the request's own (scheme and client as ``ForwardedMiddleware`` set them for trusted
    proxies; the host from the Host header, which Django checks against ALLOWED_HOSTS)."""
    if config.public_url:
        return config.public_url + request.get_full_path()
    return request.build_absolute_uri()


def media_url(request: HttpRequest, config: RelayConfig) -> str:
    if config.public_url:
        base = config.public_url
    else:
        base = f"{request.scheme}://{request.get_host()}"
    return "ws" + base.removeprefix("http") + MEDIA_PATH  # https → wss, http → ws


def twiml(response: VoiceResponse) -> HttpResponse:
    reply = HttpResponse(str(response), content_type="text/xml")
    reply["Cache-Control"] = "no-store"
    return reply


def say_and_hang_up(text: str, outcome: str) -> HttpResponse:
    """The one refusal: Twilio says ``text`` and hangs up (``outcome``: the webhook metric's)."""
    metrics.count_phone_webhook(outcome)
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return twiml(response)


def caller_key(caller: str) -> str:
    """What an anonymous call's connects a minute are counted per: its caller number, hashed
    (never logged, never stored whole)."""
    return "tel-" + hashlib.sha256(caller.encode()).hexdigest()[:16]


def _phone_user(name: str) -> Any:
    return get_user_model().objects.filter(username=name, is_active=True).first()


async def phone_user(config: RelayConfig) -> tuple[bool, Any]:
    """(found, user): calls run as ``RELAY_PHONE_USER``, or anonymously when it is unset."""
    if not config.phone_user:
        return True, None
    user = await sync_to_async(_phone_user)(config.phone_user)
    return user is not None, user


def what_the_caller_hears(ending: Ending, user: Any) -> str:
    """A limit's refusal as a caller should hear it (no internals, no figures)."""
    if ending.code == endings.BUDGET_EXHAUSTED.code:
        return SPENT
    if ending.code == endings.TOO_MANY_CONNECTS.code:
        return CALLED_TOO_OFTEN if user is None else BUSY  # per number, or the line's
    return BUSY


@csrf_exempt
async def voice(request: HttpRequest) -> HttpResponse:
    relay = request.relay  # type: ignore[attr-defined]
    config: RelayConfig = relay.config
    if not config.phone_enabled:
        return HttpResponse("Not found", status=404, content_type="text/plain")
    if request.method != "POST":
        return HttpResponse("use POST", status=405, content_type="text/plain")
    signature = request.headers.get("X-Twilio-Signature", "")
    params = request.POST
    validator = RequestValidator(config.twilio_auth_token)
    if not signature or not validator.validate(signed_url(request, config), params, signature):
        log.warning("twilio webhook refused: %s signature (403)", "bad" if signature else "no")
        metrics.count_phone_webhook("forbidden")
        return HttpResponse("Forbidden", status=403, content_type="text/plain")
    call = Call(
        PROVIDER,
        str(params.get("CallSid", ""))[:64],
        str(params.get("From", ""))[:32],
        str(params.get("To", ""))[:32],
    )
    shown = mask(call.caller, config.phone_show_numbers)
    if not call.call_sid:
        return HttpResponse("CallSid missing", status=400, content_type="text/plain")
    if relay.draining:
        log.info("call %s from %s: refused, the worker is draining", call.call_sid, shown)
        return say_and_hang_up(UNAVAILABLE, "unavailable")
    found, user = await phone_user(config)
    if not found:
        log.error("RELAY_PHONE_USER names no active user: call %s refused", call.call_sid)
        return say_and_hang_up(UNAVAILABLE, "unavailable")
    try:
        policy = await resolve_policy(
            relay.extensions.policy, user, {"type": "phone", "relay_phone": call.scope_entry()}
        )
    except PolicyError:
        log.exception("call %s: the session policy failed", call.call_sid)
        return say_and_hang_up(UNAVAILABLE, "unavailable")
    if not policy.allow:
        log.info("call %s from %s: refused by the session policy", call.call_sid, shown)
        return say_and_hang_up(policy.refusal or REFUSED, "refused")
    # What the stream's admission would refuse, said now (a stream can only be closed).
    limited = await budgets.refusal_ahead(
        config=config, limiter=relay.limiter, user=user, client_host=caller_key(call.caller)
    )
    if limited is not None:
        log.info("call %s from %s: refused (%s): %s", call.call_sid, shown, limited.code,
                 limited.message)  # fmt: skip
        return say_and_hang_up(what_the_caller_hears(limited, user), "limited")
    token = await relay.resume_store.issue(
        call.to_json(), binding(call.call_sid), config.phone_stream_ttl_s
    )
    if token is None:  # the token store (Redis) is down
        return say_and_hang_up(UNAVAILABLE, "unavailable")
    metrics.count_phone_webhook("answered")
    log.info("call %s from %s to %s: answered", call.call_sid, shown,
             mask(call.called, config.phone_show_numbers))  # fmt: skip
    response = VoiceResponse()
    if config.phone_greeting:  # Twilio says it while the relay connects upstream
        response.say(config.phone_greeting)
    connect = Connect()
    stream = Stream(url=media_url(request, config))
    stream.parameter(name=TOKEN_PARAMETER, value=token)
    connect.append(stream)
    response.append(connect)
    return twiml(response)


# ---- Media Streams messages ------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    token: str
    encoding: str


@dataclass(frozen=True)
class Media:
    audio: bytes


@dataclass(frozen=True)
class MarkEcho:
    name: str


@dataclass(frozen=True)
class Digit:
    digit: str


@dataclass(frozen=True)
class Stop:
    pass


Message = Start | Media | MarkEcho | Digit | Stop | None


def parse(text: str) -> Message:
    """One Media Streams message from Twilio (None: nothing for the relay, or malformed)."""
    try:
        event = json.loads(text)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    kind = event.get("event")
    body = event.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "media":
        if body.get("track", "inbound") not in ("inbound", "inbound_track"):
            return None
        try:
            return Media(base64.b64decode(str(body.get("payload", "")), validate=True))
        except (binascii.Error, ValueError):
            return None
    if kind == "start":
        params = body.get("customParameters")
        params = params if isinstance(params, dict) else {}
        fmt = body.get("mediaFormat") if isinstance(body.get("mediaFormat"), dict) else {}
        return Start(
            stream_sid=str(event.get("streamSid") or body.get("streamSid") or ""),
            call_sid=str(body.get("callSid") or ""),
            token=str(params.get(TOKEN_PARAMETER) or ""),
            encoding=str(fmt.get("encoding") or "audio/x-mulaw"),
        )
    if kind == "mark":
        return MarkEcho(str(body.get("name") or ""))
    if kind == "dtmf":
        digit = str(body.get("digit") or "")
        return Digit(digit) if len(digit) == 1 and digit in "0123456789*#ABCD" else None
    if kind == "stop":
        return Stop()
    return None  # connected, and anything new


def media(stream_sid: str, audio: bytes) -> str:
    payload = base64.b64encode(audio).decode("ascii")
    return (
        '{"event":"media","streamSid":' + json.dumps(stream_sid)
        + ',"media":{"payload":"' + payload + '"}}'
    )  # fmt: skip


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
