"""The one helper that builds every MailSage function, and the two layers they share.

Every function gets the same runtime and architecture (the constants in infra/config.py, which
the layer build uses too), JSON logs into its own log group with retention, tracing as
infra/constructs/tracing.py decides, both layers, code from `functions/<name>/` and its own
role. The role starts empty: no managed policy; log writes are granted on the function's log
group only, and every other permission comes from a `grant_*` call in the stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import ARCHITECTURE, PYTHON_RUNTIME_VERSION, MailSageConfig
from infra.constructs import acknowledge
from infra.constructs.tracing import tracer_environment, tracing_mode

RUNTIME = {"3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13}[PYTHON_RUNTIME_VERSION]
LAMBDA_ARCHITECTURE = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}[
    ARCHITECTURE
]

HANDLER = "handler.lambda_handler"
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache"]
# The layers keep their bytecode: `make build` compiles it for the runtime (/opt is read-only, so
# a layer without it compiles every module on every cold start).
LAYER_EXCLUDES = [".pytest_cache"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # the directory under functions/
    description: str
    memory_mb: int
    timeout_seconds: int

    @property
    def service(self) -> str:
        """POWERTOOLS_SERVICE_NAME: the service of its logs and the `service` dimension of its metrics."""
        return f"mailsage-{self.name}"


# Memory buys CPU on Lambda. The sender mostly waits (on SES, DynamoDB and its pacing grants, billed
# at its memory): about 5 ms of CPU a message takes ~17 ms at 512 MB (0.29 vCPU), so ten senders
# still render over 500 messages a second, above most accounts' SES rate (bench/RESULTS.md).
API = FunctionSpec("api", "MailSage HTTP API (validate, pre-render, persist, enqueue)", 1024, 29)
SENDER = FunctionSpec("sender", "MailSage sender: delivers queued chunks via SES or SMTP", 512, 120)
INGEST = FunctionSpec("ingest", "MailSage ingest: send requests dropped on the ingest queue", 1024, 60)
EVENTS = FunctionSpec("events", "MailSage events: applies SES notifications to message status", 512, 30)
# Network-bound: each record is one POST of at most MAILSAGE_WEBHOOK_TIMEOUT_SECONDS (10 s).
WEBHOOKS = FunctionSpec("webhooks", "MailSage webhooks: posts signed events to customer endpoints", 512, 30)
FUNCTIONS = (API, SENDER, INGEST, EVENTS, WEBHOOKS)


def powertools_environment(spec: FunctionSpec, config: MailSageConfig) -> dict[str, str]:
    """What Powertools reads: the service, the log level, and whether the Tracer is off."""
    return {
        "POWERTOOLS_SERVICE_NAME": spec.service,
        "POWERTOOLS_LOG_LEVEL": config.log_level,
        **tracer_environment(config),
    }


class SharedLayers(Construct):
    """The third-party dependency layer and the mailsage package layer, built by `make build`."""

    def __init__(self, scope: Construct, construct_id: str, *, config: MailSageConfig) -> None:
        super().__init__(scope, construct_id)
        self.layers: list[lambda_.LayerVersion] = []
        for layer_id, directory, description in (
            (
                "Dependencies",
                config.deps_layer_dir,
                "MailSage third-party dependencies (pyproject [project] dependencies, no boto3)",
            ),
            (
                "Package",
                config.package_layer_dir,
                "The mailsage package: models, domain logic, ports, adapters",
            ),
        ):
            layer = lambda_.LayerVersion(
                self,
                layer_id,
                code=lambda_.Code.from_asset(str(directory), exclude=LAYER_EXCLUDES),
                description=description,
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[LAMBDA_ARCHITECTURE],
                removal_policy=cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY,
            )
            self.layers.append(layer)
        self.deps, self.package = self.layers

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return list(self.layers)


class MailSageFunction(Construct):
    """One Lambda function built the MailSage way. `function`, `role` and `log_group` are exposed."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        config: MailSageConfig,
        layers: SharedLayers,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS if config.is_prod else logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"MailSage {spec.name} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(config.functions_dir / spec.name), exclude=ASSET_EXCLUDES),
            layers=layers.all,
            memory_size=spec.memory_mb,
            timeout=cdk.Duration.seconds(spec.timeout_seconds),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=tracing_mode(config),
            environment={**powertools_environment(spec, config), **environment},
        )
        # No reserved concurrency: it would carve capacity out of the account-wide pool. The SQS
        # consumers are bounded by their event source's maximum concurrency instead.
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"Pinned to python{PYTHON_RUNTIME_VERSION}, the one version the dependency layer is built for "
            "(infra/config.py PYTHON_RUNTIME_VERSION); the layer build and the runtime move together.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "xray:PutTraceSegments, xray:PutTelemetryRecords (tracing) and the sender's ses:GetAccount "
            "(its sending quota) have no resource type (tests/infra allow Resource '*' for these only).",
        )
