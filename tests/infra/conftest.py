"""The CDK app, synthesized once per session (the first synthesis in a process costs ~7.5 s).

Layers come from a temporary `layers_dir` with empty `deps/python` and `mailsage/python`
folders, so the suite never needs `make build`. Context is cdk.json's (what `cdk synth` uses, so
its defaults are what the tests check) plus per-fixture overrides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]

# A deployment that uses every optional feature: named identities, an SMTP relay with failover,
# browser origins, an alarm address, the prod stage, a lowered SES rate.
CONFIGURED: dict[str, Any] = {
    "stage": "prod",
    "sender_identities": ["mail.example.com", "alerts@example.org"],
    "default_from": "MailSage <noreply@mail.example.com>",  # outside dev, at one of the identities
    "allowed_origins": ["https://app.example.com"],
    "alarm_email": "oncall@example.com",
    "smtp_relay_secrets": {"relay": "mailsage/smtp/relay"},
    "failover_provider": "relay",
    "sender_max_concurrency": 20,
    "sender_priority_concurrency": 4,
    "ses_max_rate": 12.5,
    "api_rate_limit": 200,
    "api_burst_limit": 400,
}


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


@dataclass
class Synthesized:
    stack: Any  # infra.stack.MailSageStack
    template: Any  # aws_cdk.assertions.Template
    data: dict[str, Any]  # the template as a dict
    path: Path  # the template written as JSON (for cfn-lint)

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.data["Resources"].items() if v["Type"] == type_}


@pytest.fixture(scope="session")
def layers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layers")
    (path / "deps" / "python").mkdir(parents=True)
    (path / "mailsage" / "python").mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def build_app(layers_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Any, Any]]:
    """`build_app(overrides, nag=False)` -> (app, stack), with cdk.json's context plus overrides."""
    from infra.app import build_app as build

    def make(overrides: dict[str, Any] | None = None, *, nag: bool = False) -> tuple[Any, Any]:
        context = {**cdk_json_context(), "layers_dir": str(layers_dir), **(overrides or {})}
        return build(context, nag=nag, outdir=str(tmp_path_factory.mktemp("cdk.out")))

    return make


def _synthesize(
    build_app: Callable[..., tuple[Any, Any]], overrides: dict[str, Any], path: Path
) -> Synthesized:
    from aws_cdk.assertions import Template

    _, stack = build_app(overrides)
    template = Template.from_stack(stack)
    data = dict(template.to_json())
    path.write_text(json.dumps(data, indent=1))
    return Synthesized(stack, template, data, path)


@pytest.fixture(scope="session")
def synthesized(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    """The stack with cdk.json's defaults (no identities, no relays, stage dev)."""
    return _synthesize(build_app, {}, tmp_path_factory.mktemp("template") / "MailSage-dev.template.json")


@pytest.fixture(scope="session")
def configured(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    """The stack with every optional feature on (see CONFIGURED)."""
    return _synthesize(
        build_app, CONFIGURED, tmp_path_factory.mktemp("template") / "MailSage-prod.template.json"
    )
