"""The MailSage CDK app (`cdk.json`: `python3 infra/app.py`).

Synthesizes with no credentials, no network and no git: the stack is environment-agnostic
(account and region resolve at deploy time). cdk-nag's AwsSolutions pack runs on every synthesis
and fails it on any finding that is not acknowledged with a reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's directory comes first on sys.path, and infra/constructs would then
# shadow the `constructs` library. Put the project root (for `infra`) and the package source (for
# the shared table schema) there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "infra"]
for _path in (str(ROOT / "layers" / "mailsage" / "python"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import ConfigError, MailSageConfig  # noqa: E402
from infra.constructs.functions import FUNCTIONS  # noqa: E402
from infra.stack import MailSageStack  # noqa: E402


def build_app(
    context: Mapping[str, Any] | None = None, *, nag: bool = True, outdir: str | None = None
) -> tuple[cdk.App, MailSageStack]:
    """Build the app and its one stack. Raises `ConfigError` on bad context or missing layers."""
    app = cdk.App(context=dict(context or {}), outdir=outdir)
    config = MailSageConfig.from_context(app.node.try_get_context)
    config.require_layers()
    config.require_function_sources(tuple(spec.name for spec in FUNCTIONS))
    stack = MailSageStack(
        app,
        f"MailSage-{config.stage}",
        config=config,
        description=f"MailSage email-sending API ({config.stage})",
    )
    cdk.Tags.of(app).add("project", "mailsage")
    cdk.Tags.of(app).add("stage", config.stage)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    try:
        app, _ = build_app()
    except ConfigError as exc:
        sys.exit(f"MailSage CDK app: {exc}")
    app.synth()


if __name__ == "__main__":
    main()
