"""Process settings, read from the environment in exactly one place.

Marketer-tunable settings (journey waits, templates) live in the database; what
is here is how the process is wired: where the database, Redis and SMTP are.

The data directory (the embedded SQLite database, its Redis, the generated secret
key, the demo's credentials) never depends on the working directory: it is
RAPPORT_DATA_DIR, else var/ of the source checkout the code runs from (`make run`,
an editable install), else, with DATABASE_URL naming the database, the user's data
directory; with none of these Rapport refuses to guess.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SECRET_FIELDS = frozenset({"secret_key", "database_url", "redis_url", "smtp_url", "metrics_token",
                           "dkim_private_key"})
PROVIDER_SECRET_FIELDS = frozenset({
    "twilio_auth_token", "sms_gateway_url", "sms_gateway_token", "sms_gateway_webhook_secret",
    "telegram_bot_token", "telegram_webhook_secret", "whatsapp_token", "whatsapp_app_secret",
    "whatsapp_verify_token", "viber_auth_token",
})


def _redact_url(url: str | None) -> str | None:
    """Hide the password of a URL, in its user part or its query, so settings can be logged."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None and "pass" not in parts.query.lower():
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(
        f"{k}=***" if k.lower() in ("password", "pass", "passwd") else f"{k}={v}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class ProviderSettings:
    """SMS and messenger provider credentials; a channel whose credentials are empty is unavailable.

    Env names are the field names upper-cased (TWILIO_ACCOUNT_SID...). The API URLs
    default to the real providers; embedded `rapport run` points them at the local fakes.
    """

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""  # a number in E.164, or a Messaging Service SID (MG…)
    twilio_api_url: str = "https://api.twilio.com"
    sms_gateway_url: str = ""  # e.g. https://gw.example/send?to={to}&text={text}&from={sender}
    sms_gateway_method: str = "GET"
    sms_gateway_token: str = ""  # sent as "Authorization: Bearer …" when set
    sms_gateway_id_path: str = "id"  # where the provider's id is in the JSON answer, e.g. data.message_id
    sms_gateway_webhook_secret: str = ""  # receipts must carry it in X-Gateway-Secret
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    whatsapp_token: str = ""
    whatsapp_phone_number_id: str = ""
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    whatsapp_api_url: str = "https://graph.facebook.com"
    viber_auth_token: str = ""
    viber_sender_name: str = "Rapport"
    viber_api_url: str = "https://chatapi.viber.com"

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str]) -> ProviderSettings:
        defaults = cls()
        return cls(**{f.name: (env.get(f.name.upper()) or getattr(defaults, f.name)).strip()
                      for f in fields(cls)})

    def __repr__(self) -> str:  # tokens must not reach a log through repr()
        shown = {f.name: "***" if f.name in PROVIDER_SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name)
                 for f in fields(self)}
        return f"ProviderSettings({shown!r})"


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_data_dir(env: os._Environ[str] | dict[str, str]) -> Path:
    """Where local state lives, the same from whatever directory a command is run."""
    given = env.get("RAPPORT_DATA_DIR", "").strip()
    if given:
        return Path(given).expanduser().resolve()
    if _is_source_checkout(PROJECT_ROOT):
        return PROJECT_ROOT / "var"
    if env.get("DATABASE_URL"):  # the database is elsewhere; only `run` and `demo` keep files here
        return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser().resolve() / "rapport"
    raise ValueError("set RAPPORT_DATA_DIR to the folder for Rapport's SQLite database and local state "
                     f"(or DATABASE_URL): installed outside its source checkout, in {PROJECT_ROOT}, Rapport "
                     "does not guess one from the working directory")


def _is_source_checkout(root: Path) -> bool:
    try:
        return 'name = "rapport"' in (root / "pyproject.toml").read_text()
    except OSError:
        return False


# Providers' documented throughput: Telegram bots ~30 messages/s, WhatsApp Cloud API 80/s
# per number, Viber 50/s. Twilio allows 1/s per long code (more for short codes and
# Messaging Services); 10/s suits a sender pool and is meant to be tuned. Email has no
# limit unless one is set ("email=200/s"). "sms=10/s:20" allows bursts of 20.
DEFAULT_RATE_LIMITS = "sms=10/s,telegram=30/s,whatsapp=80/s,viber=50/s"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str | None
    smtp_url: str | None
    secret_key: str
    base_url: str
    port: int
    mail_from: str
    namespace: str = "rapport"
    scheduler_tick: float = 1.0
    redeliver_after: float = 60.0
    scan_interval: float = 60.0  # how often time-based entries (birthdays, win-back...) are scanned
    batch_size: int = 500
    outbox_page: bool = False  # the sink's outbox shows every workspace: embedded mode only
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    telegram_bot_username: str = ""  # deep links t.me/<bot>?start=<token>; empty: no Telegram link
    viber_chat_uri: str = ""  # deep links viber://pa?chatURI=<uri>&context=<token>; empty: no Viber link
    # Token buckets per provider, shared by all workers (workers/rate_limit.py parses them).
    rate_limits: str = DEFAULT_RATE_LIMITS
    channel_pause_after: int = 10  # consecutive send failures that pause a workspace's channel
    dispatch_lanes: int = 2  # provider connections each worker sends on at once (RAPPORT_DISPATCH_LANES)
    metrics_token: str | None = None  # GET /metrics wants "Bearer <token>"; unset: loopback clients only
    # Email: VERP bounces go to bounce+<id>-<sig>@bounce_domain (empty: bounces go to MAIL_FROM);
    # DKIM signs each message when a key, a selector and a domain are all set.
    bounce_domain: str = ""
    dkim_private_key: str = ""  # PEM text (DKIM_PRIVATE_KEY), or DKIM_PRIVATE_KEY_FILE names a file holding it
    dkim_private_key_file: str = ""
    dkim_selector: str = ""
    dkim_domain: str = ""

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = resolve_data_dir(env)
        port = int(env.get("PORT", "8000"))
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'rapport.db'}"
        secret_key = env.get("SECRET_KEY")
        if not secret_key:
            if not database_url.startswith("sqlite"):
                # Several machines must share one secret; a generated one would differ.
                raise ValueError("SECRET_KEY must be set when DATABASE_URL names a database server")
            secret_key = _local_secret(data_dir)
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            smtp_url=env.get("SMTP_URL") or None,
            secret_key=secret_key,
            base_url=(env.get("BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            port=port,
            mail_from=env.get("MAIL_FROM", "Rapport Demo Shop <shop@rapport.localhost>"),
            namespace=env.get("RAPPORT_NAMESPACE", "rapport"),
            scheduler_tick=float(env.get("RAPPORT_SCHEDULER_TICK", "1.0")),
            redeliver_after=float(env.get("RAPPORT_REDELIVER_AFTER", "60")),
            scan_interval=float(env.get("RAPPORT_SCAN_INTERVAL", "60")),
            batch_size=int(env.get("RAPPORT_BATCH_SIZE", "500")),
            outbox_page=env.get("RAPPORT_OUTBOX_PAGE", "") in ("1", "true", "yes"),
            providers=ProviderSettings.from_env(env),
            telegram_bot_username=env.get("TELEGRAM_BOT_USERNAME", "").strip().removeprefix("@"),
            viber_chat_uri=env.get("VIBER_CHAT_URI", "").strip(),
            rate_limits=env.get("RAPPORT_RATE_LIMITS", DEFAULT_RATE_LIMITS),
            channel_pause_after=int(env.get("RAPPORT_CHANNEL_PAUSE_AFTER", "10")),
            dispatch_lanes=max(1, int(env.get("RAPPORT_DISPATCH_LANES", "2"))),
            metrics_token=env.get("RAPPORT_METRICS_TOKEN") or None,
            bounce_domain=env.get("BOUNCE_DOMAIN", "").strip(),
            dkim_private_key=env.get("DKIM_PRIVATE_KEY", ""),
            dkim_private_key_file=env.get("DKIM_PRIVATE_KEY_FILE", "").strip(),
            dkim_selector=env.get("DKIM_SELECTOR", "").strip(),
            dkim_domain=env.get("DKIM_DOMAIN", "").strip(),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        """Cookies go over HTTPS only when Rapport is served over HTTPS (a local http:// run must sign in too)."""
        return self.base_url.startswith("https://")

    def describe(self) -> dict[str, object]:
        """Settings safe to print: secrets removed, passwords in URLs masked."""
        return {
            "data_dir": str(self.data_dir),
            "database_url": _redact_url(self.database_url),
            "redis_url": _redact_url(self.redis_url),
            "smtp_url": _redact_url(self.smtp_url),
            "base_url": self.base_url,
            "namespace": self.namespace,
        }

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"Settings({self.describe()!r})"


def _local_secret(data_dir: Path) -> str:
    """Embedded mode keeps a generated secret in the data directory.

    Production sets SECRET_KEY; a newcomer should not have to.
    """
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # a sibling process wrote it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip()
