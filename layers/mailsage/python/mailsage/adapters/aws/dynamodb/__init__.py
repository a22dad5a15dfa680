"""The store ports on one DynamoDB table: shared pieces (keys, codec, chunk layouts, the table
client, caches, records) beside one module per aggregate; `store.py` composes them into
`DynamoStore`. TABLE.md next to this package describes the table."""

from mailsage.adapters.aws.dynamodb.client import BatchIncomplete
from mailsage.adapters.aws.dynamodb.store import DynamoStore

__all__ = ["BatchIncomplete", "DynamoStore"]
