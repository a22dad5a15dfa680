"""The `Feedback-ID` header: names the message to complaint feedback loops and to the built-in
sink, opaque to the recipient and verifiable with the signing key alone (no lookup).

    Feedback-ID: <token>:mailsage

The token seals "message_id job_id account_id" (domain/sealing.py) with the recipient as
associated data: nobody can read or forge the ids, and a header copied into a message to another
address does not verify. Deterministic, so a retried message keeps its Feedback-ID.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsage.domain.tracking import Signer

SENDER_ID = "mailsage"  # the last field of a Feedback-ID: who sent it (Gmail's format)


@dataclass(slots=True, frozen=True)
class FeedbackRef:
    account_id: str
    job_id: str
    message_id: str


class FeedbackIds:
    def __init__(self, signer: Signer) -> None:
        self._sealer = signer.sealer(b"feedback-id")

    def header(self, account_id: str, job_id: str, message_id: str, recipient: str) -> str:
        token = self._sealer.seal([message_id, job_id, account_id], _recipient(recipient))
        return f"{token}:{SENDER_ID}"

    def read(self, value: str, recipient: str) -> FeedbackRef | None:
        """The message a Feedback-ID names, if this key made it for this recipient; else None."""
        token, _, sender = value.strip().rpartition(":")
        if sender != SENDER_ID or not token:
            return None
        fields = self._sealer.unseal(token, _recipient(recipient))
        if fields is None or len(fields) != 3 or not all(fields):
            return None
        message_id, job_id, account_id = fields
        return FeedbackRef(account_id, job_id, message_id)


def _recipient(address: str) -> bytes:
    return address.strip().lower().encode()
