"""Process settings, read from the environment in exactly one place.

Marketer-tunable settings (journey waits, templates) live in the database; what
is here is how the process is wired: where the database, Redis and SMTP are.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SECRET_FIELDS = frozenset({"secret_key", "database_url", "redis_url", "smtp_url"})


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

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("RAPPORT_DATA_DIR", "var")).resolve()
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
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

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
