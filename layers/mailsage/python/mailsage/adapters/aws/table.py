"""The one DynamoDB table's key schema: shared by the store adapter, the tests (which create the
table under moto) and the CDK storage construct, so the three cannot drift apart."""

from __future__ import annotations

from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
GSI1_NAME = "gsi1"
GSI1_PARTITION_KEY = "gsi1pk"
GSI1_SORT_KEY = "gsi1sk"
TTL_ATTRIBUTE = "ttl"  # epoch seconds; DynamoDB deletes the item some time after (reads filter it)


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """boto3 `create_table` arguments equivalent to the CDK definition (for moto and local use)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
            {"AttributeName": GSI1_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": GSI1_SORT_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI1_NAME,
                "KeySchema": [
                    {"AttributeName": GSI1_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": GSI1_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }
