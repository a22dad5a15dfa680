"""Infra tests: the synthesized CDK template, cdk-nag and cfn-lint."""
