"""Create, on a moto server, the resources a synthesized MailSage template defines, and resolve a
function's environment (Ref / Fn::GetAtt) to them: the local runtime then runs against AWS APIs
configured exactly as the stack would configure them."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import boto3

TABLE, QUEUE = "AWS::DynamoDB::Table", "AWS::SQS::Queue"
GROUP, CONFIG_SET = "AWS::Scheduler::ScheduleGroup", "AWS::SES::ConfigurationSet"
ROLE, TOPIC = "AWS::IAM::Role", "AWS::SNS::Topic"
SECRET = "AWS::SecretsManager::Secret"
REST_API, STAGE = "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage"
ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass
class Physical:
    ref: str  # what Ref resolves to
    attrs: dict[str, str] = field(default_factory=dict)  # Fn::GetAtt


class StackOnMoto:
    def __init__(self, template: dict[str, Any], region: str = "us-east-1") -> None:
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self.region = region
        self.physical: dict[str, Physical] = {}

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == kind}

    def create(self) -> StackOnMoto:
        # Queues referenced as dead-letter targets first, so redrive policies can point at them.
        queues = self.of_type(QUEUE)
        order = sorted(queues, key=lambda lid: "RedrivePolicy" in queues[lid].get("Properties", {}))
        for lid in order:
            self._queue(lid, queues[lid].get("Properties", {}))
        for lid, res in self.of_type(TABLE).items():
            self._table(lid, res["Properties"])
        for lid in self.of_type(GROUP):
            name = f"group-{lid}"[:64]
            arn = boto3.client("scheduler", region_name=self.region).create_schedule_group(Name=name)[
                "ScheduleGroupArn"
            ]
            self.physical[lid] = Physical(name, {"Arn": arn})
        for lid in self.of_type(CONFIG_SET):
            name = f"cs-{lid}"[:64]
            boto3.client("sesv2", region_name=self.region).create_configuration_set(ConfigurationSetName=name)
            self.physical[lid] = Physical(name)
        for lid in self.of_type(ROLE):
            arn = f"arn:aws:iam::123456789012:role/{lid}"[:128]
            self.physical[lid] = Physical(lid, {"Arn": arn})
        for lid in self.of_type(TOPIC):
            arn = boto3.client("sns", region_name=self.region).create_topic(Name=lid[:256])["TopicArn"]
            self.physical[lid] = Physical(arn, {"TopicArn": arn, "TopicName": lid})
        for lid, res in self.of_type(SECRET).items():
            self._secret(lid, res.get("Properties", {}))
        # The REST API is not created (the runtime serves HTTP itself); its id and stage only make up
        # URLs such as the sender's MAILSAGE_PUBLIC_URL.
        for lid in self.of_type(REST_API):
            self.physical[lid] = Physical(lid.lower()[:10], {"RootResourceId": "root"})
        for lid, res in self.of_type(STAGE).items():
            self.physical[lid] = Physical(str(res["Properties"]["StageName"]))
        return self

    def _secret(self, lid: str, props: dict[str, Any]) -> None:
        """A secret with a generated value (GenerateSecretString) or the template's SecretString.
        `Ref` of a secret is its ARN, which GetSecretValue accepts as the SecretId."""
        generate = props.get("GenerateSecretString")
        value = secrets.token_hex(max(16, int(generate.get("PasswordLength", 32)) // 2)) if generate else None
        kwargs: dict[str, Any] = {"Name": lid, "SecretString": value or str(props.get("SecretString", ""))}
        arn = boto3.client("secretsmanager", region_name=self.region).create_secret(**kwargs)["ARN"]
        self.physical[lid] = Physical(arn, {"Id": arn})

    def _queue(self, lid: str, props: dict[str, Any]) -> None:
        sqs = boto3.client("sqs", region_name=self.region)
        attributes = {}
        if "VisibilityTimeout" in props:
            attributes["VisibilityTimeout"] = str(props["VisibilityTimeout"])
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": self.resolve(policy["deadLetterTargetArn"]),
                    "maxReceiveCount": int(policy["maxReceiveCount"]),
                }
            )
        url = sqs.create_queue(QueueName=lid[:80], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.physical[lid] = Physical(url, {"Arn": arn, "QueueUrl": url, "QueueName": lid[:80]})

    def _table(self, lid: str, props: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {
            "TableName": lid,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = [
                {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                for gsi in props["GlobalSecondaryIndexes"]
            ]
        ddb = boto3.client("dynamodb", region_name=self.region)
        arn = ddb.create_table(**kwargs)["TableDescription"]["TableArn"]
        self.physical[lid] = Physical(lid, {"Arn": arn})

    def physical_for(self, logical_prefix: str) -> Physical:
        """The created resource whose logical id starts with `logical_prefix` (CDK adds a hash)."""
        [match] = [p for lid, p in self.physical.items() if lid.startswith(logical_prefix)]
        return match

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if "Ref" in value:
                pseudo = {
                    "AWS::Region": self.region,
                    "AWS::URLSuffix": "amazonaws.com",
                    "AWS::AccountId": ACCOUNT_ID,
                    "AWS::Partition": "aws",
                }
                if value["Ref"] in pseudo:
                    return pseudo[value["Ref"]]
                return self.physical[value["Ref"]].ref
            if "Fn::GetAtt" in value:
                lid, attr = value["Fn::GetAtt"]
                return self.physical[lid].attrs[attr]
            if "Fn::Join" in value:
                sep, parts = value["Fn::Join"]
                return sep.join(str(self.resolve(p)) for p in parts)
        return value

    def function_environment(self, name_part: str) -> dict[str, str]:
        """The resolved environment of the Lambda function whose logical id contains `name_part`."""
        functions = {
            lid: r
            for lid, r in self.resources.items()
            if r["Type"] == "AWS::Lambda::Function" and name_part.lower() in lid.lower()
        }
        assert len(functions) == 1, f"expected one function matching {name_part!r}: {sorted(functions)}"
        variables = next(iter(functions.values()))["Properties"]["Environment"]["Variables"]
        return {k: str(self.resolve(v)) for k, v in variables.items()}
