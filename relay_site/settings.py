"""Settings for the realtime relay: one environment-driven module.

Embedded defaults (no environment at all): SQLite, an in-memory channel layer and the offline
simulator as the upstream. Production: set DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY,
DJANGO_ALLOWED_HOSTS and a provider (see README "Configuration").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url

from realtime.guards import secret_key
from realtime.kernel.config import ConfigError, load_config

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value in ("1", "true", "yes", "on")


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


try:
    # Validated once here so that any start-up (manage.py, daphne) stops on a bad variable with
    # a message that names it; the runtime (realtime/ops/runtime.py) reads it again for itself.
    _relay = load_config(os.environ)
except ConfigError as exc:
    sys.exit(f"Configuration error: {exc}")

DEBUG = envbool("DJANGO_DEBUG", False)
# Required with a paid upstream or DJANGO_DEBUG=false (start-up refuses: realtime.E010);
# the simulator mode without one gets a random key of its own (realtime/guards/secret_key.py).
_key = secret_key.resolve(os.environ, BASE_DIR, paid=_relay.provider != "simulator")
SECRET_KEY = _key.value
RELAY_SECRET_KEY_PROBLEM = _key.problem
RELAY_SECRET_KEY_SOURCE = _key.source
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # request.relay: the runtime serving the request (realtime/ops/runtime.py).
    "realtime.ops.runtime.RequestRuntimeMiddleware",
    # A database outage is a 503 with Retry-After, not a 500 (realtime/ops/dbdown.py).
    "realtime.ops.dbdown.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Failed logins and ticket requests, across workers (realtime/guards/throttle.py): 429.
    "realtime.guards.throttle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "relay_site.urls"
ASGI_APPLICATION = "relay_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Keep connections: the relay's database work runs on few threads that live long, and
        # opening a PostgreSQL connection per call (heartbeats, admissions) costs milliseconds.
        conn_max_age=300,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes share the file in the embedded setup: wait for locks, don't fail;
    # WAL lets readers run beside the writer, and NORMAL sync commits without an fsync each.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
REDIS_CHANNEL_PREFIX = os.environ.get("REDIS_CHANNEL_PREFIX", "relay")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis with a timeout on every call and a capped pool (issue 25).
            "BACKEND": "realtime.compat.redis_layer.BoundedRedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "timeout": _relay.redis_timeout_s,  # RELAY_REDIS_TIMEOUT_SECONDS
                "max_connections": _relay.redis_max_connections,  # RELAY_REDIS_MAX_CONNECTIONS
                "prefix": REDIS_CHANNEL_PREFIX,
                "capacity": 200,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# Logging (docs/operations.md): RELAY_LOG_LEVEL and RELAY_LOG_FORMAT, validated in RelayConfig.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "session_id": {"()": "realtime.ops.logs.SessionIdFilter"},
        "redact": {"()": "realtime.ops.logs.RedactFilter"},
        "daphne_notices": {"()": "realtime.ops.logs.DaphneNoticeFilter"},
        # Control characters in messages (paths, usernames …) escaped: one record, one line.
        "escape": {"()": "realtime.ops.logs.EscapeFilter"},
        # /readyz answering 503 is not an ERROR line per probe (realtime.ops.health logs
        # when a check starts and stops failing).
        "probes": {"()": "realtime.ops.logs.ProbeResponseFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "realtime.ops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _relay.log_format,
            "filters": ["session_id", "redact", "escape", "probes"],
        }
    },
    "loggers": {
        "realtime": {"handlers": ["console"], "level": _relay.log_level, "propagate": False},
        # Not propagated: daphne gives the root logger a handler too (each line twice).
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # The SDK's upstream sockets (and the simulator's): "connection open" per session is
        # noise; their warnings and errors stay, labelled. Everything at RELAY_LOG_LEVEL=DEBUG.
        "websockets": {
            "handlers": ["console"],
            "level": "DEBUG" if _relay.log_level == "DEBUG" else "WARNING",
            "propagate": False,
        },
        # daphne's own lines go through the root handler it sets up (-v 1); a notice about
        # HTTP/2 (which the relay does not use) is dropped.
        "daphne.server": {"filters": ["daphne_notices"]},
    },
}
