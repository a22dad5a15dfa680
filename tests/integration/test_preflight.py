"""`mailsage preflight` against an account in moto: the bootstrap stack, its SSM parameter, the API
Gateway account and SES identities are moto's; SES GetAccount (which moto 5 does not implement) is
answered by botocore's Stubber on a real client, validated against the API's own shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mailsage.adapters.aws.preflight import (
    BOOTSTRAP_VERSION_PARAMETER,
    Check,
    Options,
    Report,
    Status,
    run_preflight,
)
from mailsage.adapters.aws.ses_limits import SesQuota, read_quota
from mailsage.cli import main
from tests.moto_env import REGION, mocked_aws

ACCOUNT = "123456789012"  # moto's
ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "mail.example.com"


def ses_account(production: bool = True, sending: bool = True, sent: float = 1_234.0) -> dict[str, Any]:
    return {
        "SendQuota": {"MaxSendRate": 14.0, "Max24HourSend": 50_000.0, "SentLast24Hours": sent},
        "SendingEnabled": sending,
        "ProductionAccessEnabled": production,
        "DedicatedIpAutoWarmupEnabled": False,
        "EnforcementStatus": "HEALTHY",
    }


def stubbed_account(answer: dict[str, Any]) -> Any:
    """A `read_account` whose one GetAccount is answered by the Stubber with `answer`."""
    client = boto3.client("sesv2", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_response("get_account", answer)
    stubber.activate()
    return lambda: read_quota(client)


def bootstrap(parameter: bool = True) -> None:
    """What `cdk bootstrap` leaves behind, as far as preflight looks: the stack and its version."""
    template = {"Resources": {"StagingQueue": {"Type": "AWS::SQS::Queue"}}}
    boto3.client("cloudformation").create_stack(StackName="CDKToolkit", TemplateBody=json.dumps(template))
    if parameter:
        boto3.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION_PARAMETER, Value="27", Type="String")


def identity(name: str, verified: bool = True, dkim: str = "SUCCESS") -> None:
    """An SES identity in moto, then its verification state set on moto's backend (moto has no DNS
    to verify against, so it never changes it by itself)."""
    from moto.ses.models import ses_backends

    boto3.client("sesv2").create_email_identity(EmailIdentity=name)
    stored = ses_backends[ACCOUNT][REGION].email_identities[name]
    stored.verified_for_sending_status = verified
    stored.dkim_attributes["Status"] = dkim


@pytest.fixture
def aws() -> Iterator[None]:
    with mocked_aws():
        yield


def by_name(report: Report) -> dict[str, Check]:
    return {c.name: c for c in report.checks}


def ready_account() -> None:
    bootstrap()
    identity(DOMAIN)


def check(options: Options, account: dict[str, Any] | None = None) -> Report:
    return run_preflight(options, read_account=stubbed_account(account or ses_account()))


# A domain already verified in SES, which the stack references rather than creates.
OPTIONS = Options(existing_identities=(DOMAIN,), default_from=f"MailSage <noreply@{DOMAIN}>", stage="prod")


def test_a_ready_account_passes_every_check_and_prints_the_quota(aws: None) -> None:
    # Given a bootstrapped account with a verified domain and production SES access
    ready_account()
    # When preflight runs
    report = check(OPTIONS)
    # Then every check is OK, the account and quota are shown, and nothing is to fix
    assert report.ok, [c.line() for c in report.checks]
    assert [c.status for c in report.checks] == [Status.OK] * 7
    checks = by_name(report)
    assert checks["credentials"].found == f"account {ACCOUNT} in {REGION}"
    assert checks["cdk-bootstrap"].found == "CDKToolkit CREATE_COMPLETE, bootstrap version 27"
    assert checks["ses-quota"].found == "14/s, 50000 per 24 h, 1234 sent in the last 24 h"
    assert "none set" in checks["apigateway-logs-role"].found  # the stack sets it
    assert checks[f"ses-identity {DOMAIN}"].found == "verified for sending, DKIM SUCCESS"
    assert all(c.fix == "" for c in report.checks)


def test_an_api_gateway_role_already_set_is_shown(aws: None) -> None:
    ready_account()
    role = f"arn:aws:iam::{ACCOUNT}:role/apigw-logs"
    boto3.client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
    )
    assert by_name(check(OPTIONS))["apigateway-logs-role"].found.startswith(role)


@pytest.mark.parametrize("parameter", [False, True])
def test_no_bootstrap_fails_with_the_bootstrap_command(aws: None, parameter: bool) -> None:
    # Given no CDKToolkit stack (with or without a stray version parameter)
    identity(DOMAIN)
    if parameter:
        boto3.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION_PARAMETER, Value="27", Type="String")
    # When preflight runs / Then bootstrap fails with the command for this account and region
    report = check(OPTIONS)
    assert not report.ok
    bootstrap_check = by_name(report)["cdk-bootstrap"]
    assert bootstrap_check.status is Status.FAIL
    assert bootstrap_check.found == f"no CDKToolkit stack in {REGION}"
    assert bootstrap_check.fix == f"npx cdk bootstrap aws://{ACCOUNT}/{REGION}"
    # And the other checks still ran
    assert by_name(report)[f"ses-identity {DOMAIN}"].status is Status.OK


def test_a_bootstrap_stack_without_its_version_parameter_fails(aws: None) -> None:
    bootstrap(parameter=False)
    identity(DOMAIN)
    found = by_name(check(OPTIONS))["cdk-bootstrap"]
    assert (found.status, found.found) == (
        Status.FAIL,
        f"CDKToolkit exists but {BOOTSTRAP_VERSION_PARAMETER} is missing",
    )


@pytest.mark.parametrize(
    ("stack_status", "version", "status"),
    [
        ("ROLLBACK_COMPLETE", "27", Status.FAIL),  # its creation failed: bootstrap again
        ("UPDATE_ROLLBACK_COMPLETE", "27", Status.OK),  # still the previous, working version
        ("UPDATE_IN_PROGRESS", "27", Status.WARN),
        ("CREATE_COMPLETE", "5", Status.FAIL),  # older than the templates' bootstrap rule accepts
    ],
)
def test_a_bootstrap_stack_a_deploy_cannot_use(
    aws: None, stack_status: str, version: str, status: Status
) -> None:
    # Given a CDKToolkit stack in the state a real account can leave it in (set on moto's backend)
    from moto.cloudformation.models import cloudformation_backends

    bootstrap(parameter=False)
    boto3.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION_PARAMETER, Value=version, Type="String")
    for stack in cloudformation_backends[ACCOUNT][REGION].stacks.values():
        stack.status = stack_status
    # When preflight runs / Then only a complete, recent enough stack passes
    found = by_name(check(OPTIONS))["cdk-bootstrap"]
    assert found.status is status, found
    assert stack_status in found.found


def test_an_unverified_domain_fails_with_its_dkim_records_to_publish(aws: None) -> None:
    bootstrap()
    identity(DOMAIN, verified=False, dkim="NOT_STARTED")
    report = check(OPTIONS)
    found = by_name(report)[f"ses-identity {DOMAIN}"]
    assert not report.ok
    assert (found.status, found.found) == (Status.FAIL, "not verified for sending (DKIM NOT_STARTED)")
    assert f"aws sesv2 get-email-identity --email-identity {DOMAIN} --region {REGION}" in found.fix


def test_an_unverified_address_fails_with_the_link_to_click(aws: None) -> None:
    bootstrap()
    identity("ops@example.org", verified=False, dkim="NOT_STARTED")
    found = by_name(check(Options(existing_identities=("ops@example.org",))))["ses-identity ops@example.org"]
    assert found.status is Status.FAIL
    assert found.fix.startswith("click the link SES mailed to ops@example.org")


@pytest.mark.parametrize(
    ("verified", "dkim", "status"),
    [(True, "PENDING", Status.WARN), (False, "PENDING", Status.FAIL), (True, "FAILED", Status.FAIL)],
)
def test_dkim_not_yet_successful(aws: None, verified: bool, dkim: str, status: Status) -> None:
    # Given a domain whose DKIM is pending or failed
    bootstrap()
    identity(DOMAIN, verified=verified, dkim=dkim)
    # When preflight runs / Then the identity is a WARN while sendable, else a FAIL, naming DKIM
    found = by_name(check(OPTIONS))[f"ses-identity {DOMAIN}"]
    assert found.status is status
    assert f"DKIM {dkim}" in found.found
    assert "publish the DKIM CNAME records" in found.fix


def test_an_identity_not_yet_in_ses_is_a_warning_that_the_deploy_creates_it(aws: None) -> None:
    bootstrap()
    found = by_name(check(Options(sender_identities=(DOMAIN,))))[f"ses-identity {DOMAIN}"]
    assert found.status is Status.WARN
    assert "the deploy creates it" in found.found


def test_a_referenced_identity_missing_from_ses_fails(aws: None) -> None:
    bootstrap()
    found = by_name(check(OPTIONS))[f"ses-identity {DOMAIN}"]
    assert found.status is Status.FAIL
    assert found.fix.startswith(f"aws sesv2 create-email-identity --email-identity {DOMAIN}")


def test_an_identity_already_in_ses_that_a_first_deploy_would_create_fails(aws: None) -> None:
    # Given a verified domain in SES (another team's, or another stage's) and no MailSage-prod stack
    ready_account()
    # When preflight checks a stack that would create it
    found = by_name(check(Options(sender_identities=(DOMAIN,), stage="prod")))[f"ses-identity {DOMAIN}"]
    # Then the deploy's EmailIdentity would fail: reference it instead
    assert found.status is Status.FAIL
    assert found.found == f"already in SES in {REGION}: a first deploy creating it fails"
    assert found.fix == f"-c existing_sender_identities={DOMAIN} instead of sender_identities"


def test_an_identity_of_the_stage_already_deployed_is_checked_as_usual(aws: None) -> None:
    # Given the MailSage-prod stack already deployed, with the domain it created
    ready_account()
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    boto3.client("cloudformation").create_stack(StackName="MailSage-prod", TemplateBody=json.dumps(template))
    # When preflight checks it / Then a redeploy does not create it again: it is just verified
    found = by_name(check(Options(sender_identities=(DOMAIN,), stage="prod")))[f"ses-identity {DOMAIN}"]
    assert found.status is Status.OK


def test_the_sandbox_is_a_warning_with_the_request_for_production_access(aws: None) -> None:
    ready_account()
    report = check(OPTIONS, ses_account(production=False))
    found = by_name(report)["ses-account"]
    assert report.ok  # a first deploy and a send to a verified address still work
    assert found.status is Status.WARN
    assert found.found.startswith(f"sandbox in {REGION}")
    assert found.fix.startswith("aws sesv2 put-account-details --production-access-enabled")


def test_sending_disabled_fails(aws: None) -> None:
    ready_account()
    report = check(OPTIONS, ses_account(sending=False))
    found = by_name(report)["ses-account"]
    assert not report.ok
    assert (found.status, found.found) == (Status.FAIL, f"sending is disabled in {REGION}")
    assert "put-account-sending-attributes --sending-enabled" in found.fix


def test_a_used_up_daily_quota_is_a_warning(aws: None) -> None:
    ready_account()
    found = by_name(check(OPTIONS, ses_account(sent=50_000.0)))["ses-quota"]
    assert found.status is Status.WARN
    assert found.found.endswith("the daily quota is used up")


@pytest.mark.parametrize(("stage", "status"), [("prod", Status.FAIL), ("dev", Status.WARN)])
def test_a_default_sender_outside_the_identities(aws: None, stage: str, status: Status) -> None:
    # Given the placeholder default sender, whose domain is not among the identities
    ready_account()
    options = Options(existing_identities=(DOMAIN,), default_from="noreply@mailsage.example", stage=stage)
    # When preflight runs / Then a non-dev stage fails (it would not synthesize), dev warns
    found = by_name(check(options))["default-sender"]
    assert found.status is status
    assert found.found == "the domain of noreply@mailsage.example is not among the identities"
    assert found.fix.startswith("-c sender_identities=mailsage.example (or existing_sender_identities)")


def test_a_default_sender_whose_address_is_the_identity_is_covered(aws: None) -> None:
    bootstrap()
    identity("ops@example.org")
    options = Options(
        sender_identities=("ops@example.org",), default_from="Ops <OPS@example.org>", stage="prod"
    )
    assert by_name(check(options))["default-sender"].status is Status.OK


def test_an_access_denied_call_is_a_warning_for_its_check_only(aws: None) -> None:
    # Given SES refusing GetAccount to these credentials
    ready_account()
    client = boto3.client("sesv2", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("get_account", "AccessDeniedException", "not authorized", 403)
    stubber.activate()
    # When preflight runs
    report = run_preflight(OPTIONS, read_account=lambda: read_quota(client))
    # Then the SES account check says so in one line, and every other check still answered
    found = by_name(report)["ses-account"]
    assert found.status is Status.WARN
    assert found.found == "could not read SES GetAccount (AccessDeniedException: not authorized)"
    assert by_name(report)["cdk-bootstrap"].status is Status.OK
    assert by_name(report)[f"ses-identity {DOMAIN}"].status is Status.OK
    assert report.ok


def test_preflight_writes_nothing(aws: None) -> None:
    # Given a ready account, and every AWS call preflight makes recorded
    ready_account()
    calls: list[str] = []
    original = boto3.Session.client

    def recording(self: boto3.Session, *args: Any, **kwargs: Any) -> Any:
        made = original(self, *args, **kwargs)
        made.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
        return made

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3.Session, "client", recording)
        check(OPTIONS)
    # Then it only read
    assert calls and all(c.startswith(("Get", "Describe")) for c in calls), calls


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """An environment with no AWS credentials anywhere botocore looks (nor the metadata service)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in empty.items():
        monkeypatch.setenv(name, value)
    return empty


def test_no_credentials_is_one_fail_line(no_credentials: dict[str, str]) -> None:
    report = run_preflight(Options(region=REGION))
    assert [(c.name, c.status) for c in report.checks] == [("credentials", Status.FAIL)]
    assert report.checks[0].found == "no AWS credentials found"


def test_no_region_is_one_fail_line(no_credentials: dict[str, str]) -> None:
    report = run_preflight(Options())
    assert [(c.name, c.status, c.found) for c in report.checks] == [
        ("region", Status.FAIL, "no region given or configured")
    ]


def test_the_cli_prints_one_line_per_check_and_exits_by_the_worst(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a ready account but for its missing bootstrap, and moto's SES without GetAccount
    identity(DOMAIN)
    # When `mailsage preflight` runs
    code = main(
        ["preflight", "--existing-identity", DOMAIN, "--default-from", f"noreply@{DOMAIN}", "--stage", "prod"]
    )
    lines = capsys.readouterr().out.splitlines()
    # Then each check is one line led by its status, bootstrap fails with its fix, and the exit is 1
    assert code == 1
    assert [line.split()[0] for line in lines] == ["OK", "FAIL", "OK", "WARN", "OK", "OK"]
    assert lines[1] == (
        f"FAIL  cdk-bootstrap: no CDKToolkit stack in {REGION}  fix: npx cdk bootstrap aws://{ACCOUNT}/{REGION}"
    )
    assert lines[3].startswith("WARN  ses-account: could not read SES GetAccount")


def test_the_cli_json_and_exit_zero_when_nothing_fails(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    ready_account()
    assert main(["preflight", "--json", "--existing-identity", DOMAIN]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["ok"], document["region"], document["account"]) == (True, REGION, ACCOUNT)
    assert {"name": "cdk-bootstrap", "status": "OK"}.items() <= document["checks"][1].items()
    assert set(document["checks"][0]) == {"name", "status", "found", "fix"}


def test_the_installed_command_without_credentials_says_so_without_a_traceback(
    no_credentials: dict[str, str],
) -> None:
    # Given a shell with no AWS credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | no_credentials
    env["PYTHONPATH"] = str(ROOT / "layers" / "mailsage" / "python")
    # When the real entry point runs
    done = subprocess.run(
        [sys.executable, "-m", "mailsage.cli", "preflight", "--region", REGION],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it prints one FAIL line with the fix, exits 1, and writes no traceback
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "FAIL  credentials: no AWS credentials found  fix: aws configure (or export AWS_PROFILE=...; aws sso login)"
    ]
    assert "Traceback" not in done.stderr


def test_credentials_that_cannot_be_resolved_are_one_fail_line(no_credentials: dict[str, str]) -> None:
    # Given a profile whose credential_process fails (as an expired login's would)
    Path(no_credentials["AWS_CONFIG_FILE"]).write_text("[profile broken]\ncredential_process = /bin/false\n")
    # When preflight runs with it / Then it is one FAIL line, not a traceback
    report = run_preflight(Options(region=REGION, profile="broken"))
    assert [(c.name, c.status) for c in report.checks] == [("credentials", Status.FAIL)]
    assert "CredentialRetrievalError" in report.checks[0].found


def test_an_unknown_profile_is_one_fail_line(no_credentials: dict[str, str]) -> None:
    report = run_preflight(Options(region=REGION, profile="nope"))
    assert [(c.name, c.status) for c in report.checks] == [("credentials", Status.FAIL)]
    assert "nope" in report.checks[0].found


def test_a_quota_read_is_what_preflight_reports() -> None:
    # SesQuota is shared with the sender's pacing: -1 means an unlimited daily quota
    from mailsage.adapters.aws.preflight import ses_quota

    unlimited = SesQuota(200.0, -1.0, 5.0, True, True)
    assert ses_quota(unlimited).found == "200/s, unlimited per 24 h, 5 sent in the last 24 h"
