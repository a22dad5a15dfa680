"""The transport port over SMTP: any relay, or the local runtime's built-in sink."""

from __future__ import annotations

import math
import re
import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from mailsage.errors import PermanentSendError, TransientSendError


@dataclass(slots=True, frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    tls: bool = False  # implicit TLS (smtps://)
    timeout: float = 30.0
    max_rate: float | None = None  # messages per second across every worker; None: unpaced
    max_connections: int | None = None  # concurrent connections across every worker

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpConfig:
        """`smtp://user:pass@host:587?starttls=true&max_rate=10&max_connections=2` or
        `smtps://host:465`. A bad `max_rate` or `max_connections` is a ValueError naming it (never
        the URL, which may hold a password); other parameters are ignored."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(
                f"SMTP URL must look like smtp://[user:pass@]host[:port], got {parts.scheme}://..."
            )
        query = parse_qs(parts.query, keep_blank_values=True)
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
            tls=tls,
            timeout=timeout,
            max_rate=_max_rate(query.get("max_rate", [None])[-1]),
            max_connections=_max_connections(query.get("max_connections", [None])[-1]),
        )


def _max_rate(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"max_rate must be a number of messages per second above 0, got {text!r}")
    return rate


def _max_connections(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        most = int(text)
    except ValueError:
        most = 0
    if most < 1:
        raise ValueError(f"max_connections must be a whole number of at least 1, got {text!r}")
    return most


# Words of a 4.7.x reply that asks for a slower rate (RFC 3463 4.7.x is "security or policy": a
# rate limit, or e.g. greylisting, which is a deferral like any other and counts as an attempt).
_RATE_WORDS = re.compile(r"rate|too many|throttl|slow down|limit", re.IGNORECASE)


def is_throttle(code: int, reply: str) -> bool:
    """The relay asked us to slow down: 421 (service busy, closing), or a 4.7.x rate reply."""
    return code == 421 or (400 <= code < 500 and " 4.7." in f" {reply}" and bool(_RATE_WORDS.search(reply)))


def _classify(code: int, text: bytes | str, what: str, recipient: bool = False) -> Exception:
    reply = text.decode(errors="replace") if isinstance(text, bytes) else text
    message = f"{what}: {code} {reply}".strip()
    if is_throttle(code, reply):
        return TransientSendError(message, {"smtp_code": code}, throttled=True)
    if 400 <= code < 500:
        return TransientSendError(message, {"smtp_code": code})
    # RFC 3463: 5.1.x is about the address itself (no such mailbox, bad domain); 550/551/553 at RCPT
    # without an enhanced code mean the same. Policy refusals (5.7.x) are not bounces.
    hard = recipient and (" 5.1." in f" {reply}" or (code in (550, 551, 553) and " 5.7." not in f" {reply}"))
    return PermanentSendError(message, {"smtp_code": code}, hard_bounce=hard)


class SmtpSession:
    def __init__(self, conn: smtplib.SMTP) -> None:
        self.conn = conn

    def send(
        self, sender: str, recipient: str, data: bytes, tags: dict[str, str] | None = None
    ) -> str | None:
        # SMTP carries no tags: the X-MailSage-* headers in `data` identify the message instead.
        try:
            self.conn.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(recipient, (550, b"recipient refused"))
            raise _classify(code, text, "recipient refused", recipient=True) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise TransientSendError(f"connection lost: {exc}", connection_lost=True) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused
            raise _classify(exc.smtp_code, exc.smtp_error, "relay refused") from exc
        except OSError as exc:
            raise TransientSendError(f"connection error: {exc}", connection_lost=True) from exc
        return None

    def close(self) -> None:
        try:
            self.conn.quit()
        except (smtplib.SMTPException, OSError):
            self.conn.close()


class SmtpTransport:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def open(self) -> SmtpSession:
        cfg = self.config
        try:
            if cfg.tls:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context()
                )
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            if cfg.starttls:
                conn.starttls(context=ssl.create_default_context())
            if cfg.username:
                conn.login(cfg.username, cfg.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            # Wrong credentials will not fix themselves, but the relay config can: retry the chunk.
            raise TransientSendError(f"SMTP login failed: {exc.smtp_code}", connection_lost=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientSendError(
                f"cannot connect to SMTP relay {cfg.host}:{cfg.port}: {exc}", connection_lost=True
            ) from exc
        return SmtpSession(conn)
