"""One pydantic settings model per function, read from MAILSAGE_* environment variables and
validated at cold start. Domain code never reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAILSAGE_", frozen=True, extra="ignore")

    backend: Literal["sqlite"] = "sqlite"
    data_dir: Path = Path(".mailsage")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Queue semantics of the embedded queue (on AWS these are properties of the SQS queue).
    queue_visibility_seconds: float = Field(300.0, gt=0)
    queue_max_receives: int = Field(8, ge=1)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "mailsage.db"


class ApiSettings(CommonSettings):
    chunk_size: int = Field(50, ge=1, le=50)
    max_batch_recipients: int = Field(1000, ge=1, le=10_000)
    max_request_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_variables_bytes: int = Field(16_384, ge=256)
    default_from: str = "MailSage <noreply@mailsage.example>"


class SenderSettings(CommonSettings):
    smtp_url: str = "smtp://127.0.0.1:1025"
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    # A chunk whose sends keep failing transiently is given up after this many deliveries; keep it
    # below queue_max_receives so the sender, not the queue, decides (and marks the messages failed).
    max_attempts: int = Field(5, ge=1)
    retry_base_seconds: float = Field(5.0, ge=0)
    retry_max_seconds: float = Field(900.0, ge=0)
    claim_lease_seconds: float = Field(300.0, gt=0)
    message_id_domain: str = "mailsage.local"
