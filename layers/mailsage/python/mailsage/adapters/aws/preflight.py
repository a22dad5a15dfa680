"""`mailsage preflight`: what a first `cdk deploy` and a first send need, read from the caller's AWS
account without writing anything.

Each check gives one `Check` (OK / WARN / FAIL, what it found, the fix as one line to paste). A call
refused or out of reach turns its own check into a WARN and the others still run; only missing
credentials or region stop the run, since every other check would fail the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from mailsage.adapters.aws.ses_limits import SesQuota, read_quota
from mailsage.domain.mailbox import Mailbox

BOOTSTRAP_STACK = "CDKToolkit"
STACK_NAME = "MailSage-{stage}"  # infra/app.py
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"  # the default qualifier's
# The CDK context keys a user sets for identities (created by the stack / already in the account).
IDENTITIES_KEY = "sender_identities"
EXISTING_IDENTITIES_KEY = "existing_sender_identities"
# The synthesized templates' CheckBootstrapVersion rule refuses versions 1 to 5.
MIN_BOOTSTRAP_VERSION = 6
# A stack a deploy can use: created or updated, or an update rolled back to its previous state.
_USABLE_STACK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
_NOT_FOUND = {"NotFoundException", "ParameterNotFound"}


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    found: str
    fix: str = ""

    def line(self) -> str:
        fix = f"  fix: {self.fix}" if self.fix else ""
        return f"{self.status.value:<4}  {self.name}: {self.found}{fix}"


@dataclass(frozen=True)
class Options:
    region: str | None = None
    stage: str = "dev"
    sender_identities: tuple[str, ...] = ()  # created by the stack
    existing_identities: tuple[str, ...] = ()  # already in SES, referenced by the stack
    default_from: str | None = None
    profile: str | None = None


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    region: str | None = None
    account: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        checks = [{**asdict(c), "status": c.status.value} for c in self.checks]
        return {"ok": self.ok, "region": self.region, "account": self.account, "checks": checks}


def describe_error(exc: BaseException) -> str:
    """One line for any failed call: the AWS error code and message, else the exception's own."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, NotImplementedError):
        return "not implemented by this endpoint"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def unreadable(name: str, what: str, exc: BaseException, fix: str = "") -> Check:
    return Check(name, Status.WARN, f"could not read {what} ({describe_error(exc)})", fix)


class Preflight:
    """The checks, over clients from `client(service)`; `read_account` reads SES's GetAccount."""

    def __init__(
        self,
        client: Callable[[str], Any],
        region: str,
        account: str,
        read_account: Callable[[], SesQuota] | None = None,
    ):
        self.client = client
        self.region = region
        self.account = account
        self.read_account = read_account or (lambda: read_quota(client("sesv2")))

    def run(self, options: Options) -> list[Check]:
        checks = [self.bootstrap(), self.api_gateway_role(), *self.ses_account()]
        first_deploy = self.stack_missing(STACK_NAME.format(stage=options.stage))
        checks += [
            self.identity(name, created=True, first_deploy=first_deploy) for name in options.sender_identities
        ]
        checks += [self.identity(name, created=False) for name in options.existing_identities]
        if options.default_from:
            identities = (*options.sender_identities, *options.existing_identities)
            checks.append(default_sender(options.default_from, identities, options.stage))
        return checks

    def stack_missing(self, stack: str) -> bool:
        """True when the stage's stack does not exist yet; False when it does or cannot be read."""
        try:
            self.client("cloudformation").describe_stacks(StackName=stack)
        except Exception as exc:  # noqa: BLE001 - unknown counts as "not a first deploy": no false FAIL
            return error_code(exc) == "ValidationError"
        return False

    def bootstrap(self) -> Check:
        name, fix = "cdk-bootstrap", f"npx cdk bootstrap aws://{self.account}/{self.region}"
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
        except Exception as exc:  # noqa: BLE001 - any failure is this check's, not the run's
            if error_code(exc) == "ValidationError":  # CloudFormation's "Stack ... does not exist"
                return Check(name, Status.FAIL, f"no {BOOTSTRAP_STACK} stack in {self.region}", fix)
            return unreadable(name, f"the {BOOTSTRAP_STACK} stack", exc, fix)
        status = stacks[0].get("StackStatus", "") if stacks else ""
        if status.endswith("_IN_PROGRESS"):
            return Check(
                name, Status.WARN, f"{BOOTSTRAP_STACK} stack is {status}", "wait for it, then run again"
            )
        if status not in _USABLE_STACK:
            return Check(name, Status.FAIL, f"{BOOTSTRAP_STACK} stack is {status or 'missing'}", fix)
        try:
            parameter = self.client("ssm").get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)["Parameter"]
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) in _NOT_FOUND:
                found = f"{BOOTSTRAP_STACK} exists but {BOOTSTRAP_VERSION_PARAMETER} is missing"
                return Check(name, Status.FAIL, found, fix)
            return unreadable(name, BOOTSTRAP_VERSION_PARAMETER, exc, fix)
        return bootstrap_version(name, status, str(parameter.get("Value", "")), fix)

    def api_gateway_role(self) -> Check:
        # The stack sets the account's API Gateway CloudWatch role itself (AWS::ApiGateway::Account),
        # so a missing one is reported, not required.
        name = "apigateway-logs-role"
        try:
            role = self.client("apigateway").get_account().get("cloudwatchRoleArn")
        except Exception as exc:  # noqa: BLE001
            return unreadable(name, "the API Gateway account settings", exc)
        if role:
            return Check(name, Status.OK, f"{role} (the stack sets its own role on deploy)")
        return Check(name, Status.OK, f"none set in {self.region}: the stack sets one on deploy")

    def ses_account(self) -> list[Check]:
        try:
            quota = self.read_account()
        except Exception as exc:  # noqa: BLE001
            fix = f"aws sesv2 get-account --region {self.region}"
            return [unreadable("ses-account", "SES GetAccount", exc, fix)]
        return [ses_access(quota, self.region), ses_quota(quota)]

    def identity(self, identity: str, *, created: bool, first_deploy: bool = False) -> Check:
        """An identity the stack creates (`created`) or references; `first_deploy`: no stack yet."""
        name = f"ses-identity {identity}"
        show = f"aws sesv2 get-email-identity --email-identity {identity} --region {self.region}"
        try:
            found = self.client("sesv2").get_email_identity(EmailIdentity=identity)
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) not in _NOT_FOUND:
                return unreadable(name, "the identity", exc)
            if created:
                where = f"not in SES in {self.region}: the deploy creates it, then publish its DKIM records"
                return Check(name, Status.WARN, where, f"after the deploy: {show}")
            fix = f"aws sesv2 create-email-identity --email-identity {identity} --region {self.region}"
            where = (
                f"not in SES in {self.region}, and the stack only references it ({EXISTING_IDENTITIES_KEY})"
            )
            return Check(name, Status.FAIL, where, f"{fix} (or list it in {IDENTITIES_KEY} instead)")
        if created and first_deploy:
            # The stack's AWS::SES::EmailIdentity cannot create what already exists: the deploy fails.
            where = f"already in SES in {self.region}: a first deploy creating it fails"
            fix = f"-c {EXISTING_IDENTITIES_KEY}={identity} instead of {IDENTITIES_KEY}"
            return Check(name, Status.FAIL, where, fix)
        return identity_check(name, identity, found, self.region)


def bootstrap_version(name: str, status: str, version: str, fix: str) -> Check:
    found = f"{BOOTSTRAP_STACK} {status}, bootstrap version {version}"
    if not version.isdigit() or int(version) < MIN_BOOTSTRAP_VERSION:
        return Check(name, Status.FAIL, f"{found} (the templates need {MIN_BOOTSTRAP_VERSION} or later)", fix)
    return Check(name, Status.OK, found)


def identity_check(name: str, identity: str, found: dict[str, Any], region: str) -> Check:
    """Verification and DKIM of one identity, from GetEmailIdentity's answer."""
    verified = bool(found.get("VerifiedForSendingStatus"))
    dkim = str((found.get("DkimAttributes") or {}).get("Status") or "NOT_STARTED")
    show = f"aws sesv2 get-email-identity --email-identity {identity} --region {region}"
    records = f"publish the DKIM CNAME records listed by: {show}"
    is_domain = "@" not in identity
    if is_domain and dkim in ("FAILED", "TEMPORARY_FAILURE"):
        return Check(name, Status.FAIL, f"DKIM {dkim}, verified: {_yes(verified)}", records)
    if not verified:
        fix = records if is_domain else f"click the link SES mailed to {identity} (resend: {show})"
        return Check(name, Status.FAIL, f"not verified for sending (DKIM {dkim})", fix)
    if is_domain and dkim != "SUCCESS":
        return Check(name, Status.WARN, f"verified, DKIM {dkim}", records)
    return Check(name, Status.OK, f"verified for sending, DKIM {dkim}")


def ses_access(quota: SesQuota, region: str) -> Check:
    name = "ses-account"
    if not quota.sending_enabled:
        return Check(
            name,
            Status.FAIL,
            f"sending is disabled in {region}",
            f"aws sesv2 put-account-sending-attributes --sending-enabled --region {region} "
            "(if AWS paused it, answer the case in the AWS Support console)",
        )
    if not quota.production_access_enabled:
        return Check(
            name,
            Status.WARN,
            f"sandbox in {region}: mail only to verified addresses, at most "
            f"{quota.max_24_hour_send:.0f} a day",
            f"aws sesv2 put-account-details --production-access-enabled --mail-type TRANSACTIONAL "
            f"--website-url https://YOUR.SITE --use-case-description 'YOUR USE' --region {region}",
        )
    return Check(name, Status.OK, f"production access, sending enabled in {region}")


def ses_quota(quota: SesQuota) -> Check:
    daily = "unlimited" if quota.max_24_hour_send < 0 else f"{quota.max_24_hour_send:.0f}"
    found = (
        f"{quota.max_send_rate:g}/s, {daily} per 24 h, {quota.sent_last_24_hours:.0f} sent in the last 24 h"
    )
    if 0 <= quota.max_24_hour_send <= quota.sent_last_24_hours:
        return Check("ses-quota", Status.WARN, f"{found}: the daily quota is used up")
    return Check("ses-quota", Status.OK, found)


def default_sender(default_from: str, identities: Iterable[str], stage: str) -> Check:
    """The default sender is sendable only from one of the identities (its address or its domain);
    a non-dev stage does not synthesize without it."""
    name = "default-sender"
    mailbox = Mailbox.parse(default_from)
    known = {i.lower() for i in identities}
    if mailbox.domain and (mailbox.domain in known or mailbox.address.lower() in known):
        return Check(name, Status.OK, f"{mailbox.address} is covered by an identity")
    status = Status.WARN if stage == "dev" else Status.FAIL
    shown = mailbox.address if mailbox.domain else repr(default_from)
    found = f"the domain of {shown} is not among the identities"
    fix = (
        f"-c {IDENTITIES_KEY}={mailbox.domain} (or {EXISTING_IDENTITIES_KEY}), "
        "or -c default_from=noreply@YOUR.DOMAIN at an identity's domain"
    )
    return Check(name, status, found, fix)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def run_preflight(options: Options, read_account: Callable[[], SesQuota] | None = None) -> Report:
    """Every check with the caller's credentials; no credentials or no region is one FAIL."""
    import boto3
    from botocore.config import Config

    report = Report()
    try:
        session = boto3.Session(region_name=options.region, profile_name=options.profile)
    except Exception as exc:  # noqa: BLE001 - e.g. a profile that does not exist
        report.checks.append(
            Check("credentials", Status.FAIL, describe_error(exc), "aws configure list-profiles")
        )
        return report
    report.region = session.region_name
    if not report.region:
        fix = "pass --region eu-west-1 (or export AWS_REGION=eu-west-1)"
        report.checks.append(Check("region", Status.FAIL, "no region given or configured", fix))
        return report
    fix = "aws configure (or export AWS_PROFILE=...; aws sso login)"
    try:
        # Resolving can itself fail: an expired SSO token, a credential_process that errors.
        credentials = session.get_credentials()
    except Exception as exc:  # noqa: BLE001
        report.checks.append(Check("credentials", Status.FAIL, describe_error(exc), fix))
        return report
    if credentials is None:
        report.checks.append(Check("credentials", Status.FAIL, "no AWS credentials found", fix))
        return report
    # Short timeouts and few retries: a check out of reach should cost seconds, not minutes.
    config = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 2})
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, config=config)  # type: ignore[call-overload]
        return clients[service]

    try:
        report.account = str(client("sts").get_caller_identity()["Account"])
    except Exception as exc:  # noqa: BLE001
        fix = "aws sts get-caller-identity (renew or fix the credentials)"
        report.checks.append(Check("credentials", Status.FAIL, f"refused ({describe_error(exc)})", fix))
        return report
    report.checks.append(Check("credentials", Status.OK, f"account {report.account} in {report.region}"))
    preflight = Preflight(client, report.region, report.account, read_account)
    report.checks += preflight.run(options)
    return report
