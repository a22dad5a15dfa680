"""Capability constructs, one file each: storage, queues, functions, scheduling, ses, api, monitoring."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on `construct` (and its children), with the reason it is
    accepted. Granular IAM5 findings name the exact wildcard resource: `AwsSolutions-IAM5[Resource::...]`."""
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))
