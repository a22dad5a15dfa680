"""CDK context -> one typed, validated `MailSageConfig`.

Plain Python (no CDK import), so the layer build can read the runtime constants cheaply. Values
come from `cdk.json` (JSON types) or from `cdk synth -c key=value` (always strings), so every
parser accepts both. A bad value fails synthesis with `ConfigError` naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.proxy_payload import LAMBDA_SYNC_PAYLOAD_BYTES, MAX_PROXY_BODY_BYTES

# The Lambda runtime and architecture: one constant shared by the layer build
# (infra/build_layers.py picks the wheel platform from it) and by every function and layer.
PYTHON_RUNTIME_VERSION = "3.12"
ARCHITECTURE = "arm64"
# Wheel platform tag per architecture (always manylinux2014: a newer tag alone has silently
# resolved pydantic-core to a placeholder release).
WHEEL_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SOURCE = PROJECT_ROOT / "layers" / "mailsage" / "python"

# Keys this app reads from the CDK context (cdk.json or `-c key=value`).
CONTEXT_KEYS = (
    "stage",
    "sender_identities",
    "existing_sender_identities",
    "allowed_origins",
    "alarm_email",
    "smtp_relay_secrets",
    "default_from",
    "default_provider",
    "failover_provider",
    "max_receive_count",
    "api_rate_limit",
    "api_burst_limit",
    "sender_max_concurrency",
    "sender_priority_concurrency",
    "ses_max_rate",
    "deletion_protection",
    "log_level",
    "retention_days",
    "layers_dir",
    "existing_table_name",
    "existing_signing_secret_name",
    "custom_domain_name",
    "custom_domain_certificate_arn",
    "custom_domain_hosted_zone_id",
    "public_routes_rate_limit",
    "public_routes_burst_limit",
    "account_rate_limit",
    "account_rate_burst",
    "max_request_bytes",
    "web_acl_arn",
    "trace_sample_rate",
    "ses_event_destination",
)

_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s<>]+@([^@\s<>]+)$")
_ADDRESS = re.compile(r"^(?:[^<>]*<)?([^@\s<>]+@[^@\s<>]+)>?$")  # "Name <a@b.c>" or "a@b.c"
_ORIGIN = re.compile(r"^https?://[^/\s]+$")
_RELAY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
# Days a job's records (metadata, and with them its bodies) are kept on AWS when the context says
# nothing: long enough for bounces, complaints and support questions, short enough that a
# deployment does not keep every recipient's address forever. 0 keeps them.
DEFAULT_RETENTION_DAYS = 90
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# SQS event source mappings accept a maximum concurrency of 2..1000.
_MIN_CONCURRENCY, _MAX_CONCURRENCY = 2, 1000

_MIN_REQUEST_BYTES = 1024  # ApiSettings.max_request_bytes' own floor
# A regional web ACL; a CLOUDFRONT-scope one is arn:...:wafv2:us-east-1:<account>:global/webacl/...
_WEB_ACL_ARN = re.compile(
    r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:(regional|global)/webacl/[A-Za-z0-9_-]{1,128}/[A-Za-z0-9-]+$"
)


@dataclass(frozen=True)
class CustomDomain:
    """The API's own domain: links in delivered mail name it, so they survive a replaced API."""

    name: str
    certificate_arn: str  # ACM, in the stack's region (a REGIONAL endpoint needs that)
    hosted_zone_id: str | None = None  # with one, the stack writes the alias record

    @property
    def url(self) -> str:
        return f"https://{self.name}"


class ConfigError(ValueError):
    """A context value is missing, malformed or inconsistent."""


class LayersNotBuilt(ConfigError):
    """The layer directories the app deploys do not exist yet."""


def _sender_max_attempts() -> int:
    """The sender's MAILSAGE_MAX_ATTEMPTS default (the queue must redrive only after it)."""
    from mailsage.settings import SenderSettings

    return int(SenderSettings.model_fields["max_attempts"].default)


def _webhook_max_attempts() -> int:
    """The webhooks function's MAILSAGE_WEBHOOK_MAX_ATTEMPTS default."""
    from mailsage.settings import WebhooksSettings

    return int(WebhooksSettings.model_fields["webhook_max_attempts"].default)


def _default_from() -> str:
    from mailsage.settings import ApiSettings

    return str(ApiSettings.model_fields["default_from"].default)


@dataclass(frozen=True)
class MailSageConfig:
    stage: str = "dev"
    sender_identities: tuple[str, ...] = ()
    # Identities already verified in the account (another stack, the console): referenced, not created.
    existing_sender_identities: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    alarm_email: str | None = None
    smtp_relay_secrets: Mapping[str, str] = field(default_factory=dict)
    default_from: str = "MailSage <noreply@mailsage.example>"
    default_provider: str = "ses"
    failover_provider: str | None = None
    max_receive_count: int = 8
    api_rate_limit: int = 50
    api_burst_limit: int = 100
    sender_max_concurrency: int = 10
    # The transactional lane's own event source: concurrent senders that never work a campaign.
    sender_priority_concurrency: int = 2
    # Messages/s below the account's SES MaxSendRate (which the sender reads); None: the quota.
    ses_max_rate: float | None = None
    deletion_protection: bool = False
    log_level: str = "INFO"
    # DynamoDB TTL on a job's items (metadata and bodies); None keeps them.
    retention_days: int | None = DEFAULT_RETENTION_DAYS
    # A redeploy re-attaches what an earlier stack retained (prod's table and signing key) by
    # name instead of creating new ones, so stored mail, API keys and links already sent keep working.
    existing_table_name: str | None = None
    existing_signing_secret_name: str | None = None
    custom_domain: CustomDomain | None = None
    # The unauthenticated /t and /u routes (prefetchers, link scanners) get their own stage limits.
    public_routes_rate_limit: int = 100
    public_routes_burst_limit: int = 200
    # Each account's share of the API (requests/s, burst; 0: no per-account limit), so one tenant
    # cannot take the whole stage's rate: the api function enforces it (MAILSAGE_ACCOUNT_RATE_*).
    account_rate: tuple[int, int] = (20, 40)
    # The api function's MAILSAGE_MAX_REQUEST_BYTES on AWS: at most what fits Lambda's payload limit.
    max_request_bytes: int = MAX_PROXY_BODY_BYTES
    # A regional AWS WAF web ACL (managed by the account) attached to the REST API's stage.
    web_acl_arn: str | None = None
    trace_sample_rate: float = 0.01  # share of API requests X-Ray records (infra/constructs/tracing.py)
    ses_event_destination: str = "sns"  # or "eventbridge": cheaper, best effort (infra/constructs/ses.py)
    layers_dir: Path = PROJECT_ROOT / "build" / "layers"
    functions_dir: Path = PROJECT_ROOT / "functions"  # not a context key: the code lives in this repo

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def all_sender_identities(self) -> tuple[str, ...]:
        """Every identity the sender may use: the ones this stack creates, then the imported ones."""
        return self.sender_identities + self.existing_sender_identities

    @property
    def webhook_max_receive_count(self) -> int:
        """Receives before a webhook delivery is dead-lettered: past the webhooks function's own
        MAILSAGE_WEBHOOK_MAX_ATTEMPTS (it records the delivery as failed on its last attempt), with
        room for a receive or two lost to a crashed invocation."""
        return max(self.max_receive_count, _webhook_max_attempts() + 2)

    @property
    def deps_layer_dir(self) -> Path:
        return self.layers_dir / "deps"

    @property
    def package_layer_dir(self) -> Path:
        return self.layers_dir / "mailsage"

    def require_layers(self) -> None:
        """Raise `LayersNotBuilt` unless both layer directories hold their `python/` folder."""
        missing = [
            str(d / "python")
            for d in (self.deps_layer_dir, self.package_layer_dir)
            if not (d / "python").is_dir()
        ]
        if missing:
            raise LayersNotBuilt(
                f"Lambda layers not found ({', '.join(missing)}): run `make build` first "
                "(or pass -c layers_dir=<dir> holding deps/python and mailsage/python)."
            )

    def require_function_sources(self, names: tuple[str, ...]) -> None:
        missing = [n for n in names if not (self.functions_dir / n / "handler.py").is_file()]
        if missing:
            raise ConfigError(
                f"function sources missing under {self.functions_dir}: "
                + ", ".join(f"{n}/handler.py" for n in missing)
            )

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> MailSageConfig:
        """Build from a context getter such as `app.node.try_get_context`. Keys are checked in
        this order, so a context with several bad values names the same key every time."""
        stage = _stage(get)
        identities = _identities(get, "sender_identities")
        existing = _existing_identities(get, identities)
        origins = _allowed_origins(get)
        alarm_email = _alarm_email(get)
        relays = _smtp_relays(get)
        default_provider, failover = _providers(get, relays)
        default_from = _default_from_address(get)
        _require_verified_default_from(stage, default_from, (*identities, *existing))
        max_receive_count = _max_receive_count(get)
        rate = _int(get, "api_rate_limit", 50, minimum=1, maximum=10_000)
        burst = _int(get, "api_burst_limit", 100, minimum=1, maximum=5_000)
        concurrency = _int(
            get, "sender_max_concurrency", 10, minimum=_MIN_CONCURRENCY, maximum=_MAX_CONCURRENCY
        )
        priority_concurrency = _int(
            get, "sender_priority_concurrency", 2, minimum=_MIN_CONCURRENCY, maximum=_MAX_CONCURRENCY
        )
        ses_max_rate = _optional_rate(get, "ses_max_rate")
        retention_days = _retention_days(get)
        existing_table, existing_secret = _existing_names(get)
        public_rate = _int(get, "public_routes_rate_limit", 100, minimum=1, maximum=10_000)
        public_burst = _int(get, "public_routes_burst_limit", 200, minimum=1, maximum=5_000)
        return cls(
            stage=stage,
            sender_identities=tuple(identities),
            existing_sender_identities=tuple(existing),
            allowed_origins=tuple(origins),
            alarm_email=alarm_email,
            smtp_relay_secrets=dict(relays),
            default_from=default_from,
            default_provider=default_provider,
            failover_provider=failover,
            max_receive_count=max_receive_count,
            api_rate_limit=rate,
            api_burst_limit=burst,
            sender_max_concurrency=concurrency,
            sender_priority_concurrency=priority_concurrency,
            ses_max_rate=ses_max_rate,
            deletion_protection=_bool(get, "deletion_protection", stage == "prod"),
            log_level=_choice(get, "log_level", _LOG_LEVELS, "INFO"),
            retention_days=retention_days,
            existing_table_name=existing_table,
            existing_signing_secret_name=existing_secret,
            custom_domain=_custom_domain(get),
            public_routes_rate_limit=public_rate,
            public_routes_burst_limit=public_burst,
            account_rate=_account_rate(get, rate, burst),
            max_request_bytes=_max_request_bytes(get),
            web_acl_arn=_web_acl_arn(get),
            trace_sample_rate=_trace_sample_rate(get),
            ses_event_destination=_choice(get, "ses_event_destination", ("sns", "eventbridge"), "sns"),
            layers_dir=_path(get, "layers_dir", "build/layers"),
        )


# --- one validator per context key that needs more than a type and a range --------------------


def _stage(get: Callable[[str], Any]) -> str:
    stage = _string(get, "stage", "dev")
    if not _STAGE.match(stage):
        raise ConfigError(f"context 'stage' must be lower-case letters, digits and '-' (got {stage!r})")
    return stage


def _identities(get: Callable[[str], Any], key: str) -> list[str]:
    identities = _string_list(get, key)
    for identity in identities:
        if not (
            _DOMAIN.match(identity) or (_EMAIL.match(identity) and _DOMAIN.match(identity.split("@")[1]))
        ):
            raise ConfigError(f"context {key!r}: {identity!r} is neither a domain nor an address")
    return identities


def _existing_identities(get: Callable[[str], Any], created: list[str]) -> list[str]:
    existing = _identities(get, "existing_sender_identities")
    both = sorted({i.lower() for i in existing} & {i.lower() for i in created})
    if both:
        raise ConfigError(
            f"context 'existing_sender_identities' and 'sender_identities' both list {', '.join(both)}: "
            "an identity is either created by this stack or already in the account, not both"
        )
    return existing


def _require_verified_default_from(stage: str, default_from: str, identities: tuple[str, ...]) -> None:
    """Outside dev, the default sender must use an identity the stack knows of: otherwise the deploy
    succeeds and every send without a `from` is refused by SES. An address identity covers that
    address; a domain identity, addresses at that domain."""
    if stage == "dev":
        return  # the placeholder default keeps a first synthesis working
    match = _ADDRESS.match(default_from)
    address = match.group(1).lower() if match else default_from.lower()
    domain = address.rpartition("@")[2]
    if {address, domain} & {i.lower() for i in identities}:
        return
    raise ConfigError(
        f"context 'default_from' ({address}) uses no SES identity of stage {stage!r}: add {domain} to "
        "'sender_identities' (created by this stack) or 'existing_sender_identities' (already verified "
        "in the account), or set 'default_from' to an address at one of them"
    )


def _allowed_origins(get: Callable[[str], Any]) -> list[str]:
    origins = _string_list(get, "allowed_origins")
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ConfigError(
                f"context 'allowed_origins': {origin!r} must be a scheme and host, e.g. https://app.example.com"
            )
    return origins


def _alarm_email(get: Callable[[str], Any]) -> str | None:
    alarm_email = _optional_string(get, "alarm_email")
    if alarm_email is not None and not _EMAIL.match(alarm_email):
        raise ConfigError(f"context 'alarm_email': {alarm_email!r} is not an email address")
    return alarm_email


def _smtp_relays(get: Callable[[str], Any]) -> dict[str, str]:
    relays = _string_dict(get, "smtp_relay_secrets")
    for name, secret in relays.items():
        if not _RELAY_NAME.match(name) or name == "ses":
            raise ConfigError(
                f"context 'smtp_relay_secrets': relay name {name!r} must be lower-case letters, digits, "
                "'-' or '_' and not 'ses'"
            )
        if not _SECRET_NAME.match(secret):
            raise ConfigError(
                f"context 'smtp_relay_secrets': {secret!r} is not a Secrets Manager secret name"
            )
    return relays


def _providers(get: Callable[[str], Any], relays: Mapping[str, str]) -> tuple[str, str | None]:
    """(default provider, failover provider): SES or a named relay, the failover another one."""
    providers = {"ses", *relays}
    default_provider = _string(get, "default_provider", "ses")
    if default_provider not in providers:
        raise ConfigError(
            f"context 'default_provider' is {default_provider!r}; known providers: {sorted(providers)} "
            "(SMTP relays come from 'smtp_relay_secrets')"
        )
    failover = _optional_string(get, "failover_provider")
    if failover is not None and (failover not in providers or failover == default_provider):
        raise ConfigError(
            f"context 'failover_provider' is {failover!r}; it must be a known provider other than "
            f"the default {default_provider!r}: {sorted(providers - {default_provider})}"
        )
    return default_provider, failover


def _default_from_address(get: Callable[[str], Any]) -> str:
    default_from = _string(get, "default_from", _default_from())
    if not _ADDRESS.match(default_from):
        raise ConfigError(f"context 'default_from': {default_from!r} is not an address")
    return default_from


def _max_receive_count(get: Callable[[str], Any]) -> int:
    max_attempts = _sender_max_attempts()
    max_receive_count = _int(get, "max_receive_count", 8, minimum=1, maximum=1000)
    if max_receive_count <= max_attempts:
        raise ConfigError(
            f"context 'max_receive_count' ({max_receive_count}) must exceed the sender's "
            f"MAILSAGE_MAX_ATTEMPTS ({max_attempts}): the sender, not the queue, gives a chunk up"
        )
    return max_receive_count


def _choice(get: Callable[[str], Any], key: str, choices: tuple[str, ...], default: str) -> str:
    choice = {c.lower(): c for c in choices}.get(_string(get, key, default).lower())
    if choice is None:
        raise ConfigError(f"context {key!r} must be one of {', '.join(choices)} (got {get(key)!r})")
    return choice


def _retention_days(get: Callable[[str], Any]) -> int | None:
    """Days a job's records are kept (default DEFAULT_RETENTION_DAYS); 0: kept until deleted."""
    days = _int(get, "retention_days", DEFAULT_RETENTION_DAYS, minimum=0, maximum=3650)
    return days or None


def _existing_names(get: Callable[[str], Any]) -> tuple[str | None, str | None]:
    """(table, signing secret) an earlier stack retained, to be re-attached by name."""
    table = _optional_string(get, "existing_table_name")
    if table is not None and not _TABLE_NAME.match(table):
        raise ConfigError(f"context 'existing_table_name': {table!r} is not a DynamoDB table name")
    secret = _optional_string(get, "existing_signing_secret_name")
    if secret is not None and not _SECRET_NAME.match(secret):  # a name, not an ARN
        raise ConfigError(
            f"context 'existing_signing_secret_name': {secret!r} is not a Secrets Manager secret name"
        )
    return table, secret


def _account_rate(get: Callable[[str], Any], stage_rate: int, stage_burst: int) -> tuple[int, int]:
    """Above the stage's own throttle a per-account limit would never be reached: refused."""
    rate = _int(get, "account_rate_limit", 20, minimum=0, maximum=10_000)
    burst = _int(get, "account_rate_burst", 40, minimum=0, maximum=10_000)
    if rate > stage_rate or burst > stage_burst:
        raise ConfigError(
            f"context 'account_rate_limit'/'account_rate_burst' ({rate}/{burst}) must not exceed the "
            f"stage's 'api_rate_limit'/'api_burst_limit' ({stage_rate}/{stage_burst})"
        )
    if rate and not burst:
        raise ConfigError("context 'account_rate_burst' must be at least 1 when 'account_rate_limit' is set")
    return rate, burst


def _custom_domain(get: Callable[[str], Any]) -> CustomDomain | None:
    name = _optional_string(get, "custom_domain_name")
    arn = _optional_string(get, "custom_domain_certificate_arn")
    zone = _optional_string(get, "custom_domain_hosted_zone_id")
    if not name:
        if arn or zone:
            raise ConfigError("context 'custom_domain_name' is required with a certificate or hosted zone")
        return None
    if not _DOMAIN.match(name):
        raise ConfigError(f"context 'custom_domain_name': {name!r} is not a domain name")
    if not arn:
        raise ConfigError(
            "context 'custom_domain_certificate_arn' is required with 'custom_domain_name' "
            "(an ACM certificate for it, in the stack's region)"
        )
    if not _CERTIFICATE_ARN.match(arn):
        raise ConfigError(f"context 'custom_domain_certificate_arn': {arn!r} is not an ACM certificate ARN")
    if zone and not _HOSTED_ZONE_ID.match(zone):
        raise ConfigError(
            f"context 'custom_domain_hosted_zone_id': {zone!r} is not a Route 53 hosted zone id"
        )
    return CustomDomain(name.lower(), arn, zone or None)


def _max_request_bytes(get: Callable[[str], Any]) -> int:
    limit = _int(get, "max_request_bytes", MAX_PROXY_BODY_BYTES, minimum=_MIN_REQUEST_BYTES, maximum=2**40)
    if limit > MAX_PROXY_BODY_BYTES:
        raise ConfigError(
            f"context 'max_request_bytes' ({limit}) is above {MAX_PROXY_BODY_BYTES}, the largest body "
            f"whose base64 proxy event fits Lambda's {LAMBDA_SYNC_PAYLOAD_BYTES}-byte payload limit: a "
            "larger body would fail at API Gateway instead of getting MailSage's 413"
        )
    return limit


def _web_acl_arn(get: Callable[[str], Any]) -> str | None:
    arn = _optional_string(get, "web_acl_arn")
    if arn is None:
        return None
    match = _WEB_ACL_ARN.match(arn)
    if match is None:
        raise ConfigError(
            f"context 'web_acl_arn': {arn!r} is not a WAF web ACL ARN "
            "(arn:aws:wafv2:<region>:<account>:regional/webacl/<name>/<id>)"
        )
    if match.group(1) == "global":
        raise ConfigError(
            f"context 'web_acl_arn': {arn!r} is a CLOUDFRONT-scope web ACL, which cannot be attached to "
            "a regional API stage: use a web ACL of scope REGIONAL in the stack's region"
        )
    return arn


# --- parsers: JSON types from cdk.json, strings from `-c key=value`; None means "use the default"


def _trace_sample_rate(get: Callable[[str], Any]) -> float:
    value = get("trace_sample_rate")
    try:
        rate = 0.01 if value in (None, "") else float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not 0 <= rate <= 1:  # NaN fails this too
        raise ConfigError(f"context 'trace_sample_rate' must be a share from 0 to 1 (got {value!r})")
    return rate


def _string(get: Callable[[str], Any], key: str, default: str) -> str:
    value = _optional_string(get, key)
    return default if value is None else value


def _optional_string(get: Callable[[str], Any], key: str) -> str | None:
    value = get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"context {key!r} must be a string (got {value!r})")
    return value.strip()


def _int(get: Callable[[str], Any], key: str, default: int, *, minimum: int, maximum: int) -> int:
    value = get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"context {key!r} must be an integer (got {value!r})")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"context {key!r} must be an integer (got {value!r})") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"context {key!r} must be between {minimum} and {maximum} (got {number})")
    return number


def _optional_rate(get: Callable[[str], Any], key: str) -> float | None:
    """A positive number of messages per second, or None."""
    value = get(key)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        rate = float(value)
    except ValueError:
        raise ConfigError(
            f"context {key!r} must be a number of messages per second (got {value!r})"
        ) from None
    if not 0 < rate <= 100_000:  # NaN fails this too
        raise ConfigError(f"context {key!r} must be above 0 and at most 100000 (got {value!r})")
    return rate


def _bool(get: Callable[[str], Any], key: str, default: bool) -> bool:
    value = get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"context {key!r} must be true or false (got {value!r})")


def _json(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"context {key!r} is not valid JSON ({exc.msg}): {value!r}") from None


def _string_list(get: Callable[[str], Any], key: str) -> list[str]:
    value = get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        # `-c key='["a","b"]'` or `-c key=a,b`
        value = _json(key, value) if value.lstrip().startswith("[") else value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"context {key!r} must be a list of strings (got {value!r})")
    items = [v.strip() for v in value if v.strip()]
    if len(set(items)) != len(items):
        raise ConfigError(f"context {key!r} lists a value twice: {items!r}")
    return items


def _string_dict(get: Callable[[str], Any], key: str) -> dict[str, str]:
    value = get(key)
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = _json(key, value)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"context {key!r} must be a JSON object of strings (got {value!r})")
    return dict(value)


def _path(get: Callable[[str], Any], key: str, default: str) -> Path:
    path = Path(_string(get, key, default)).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
