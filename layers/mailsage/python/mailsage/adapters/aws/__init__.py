"""AWS adapters: DynamoDB store, SQS queue, EventBridge Scheduler, SES v2 transport. boto3 clients
are created lazily, on first use, never at import time."""
