"""Settings of the per-tenant reputation breaker: ``Settings.reputation``, read from the environment with the rest.

Off by default, so an existing deployment keeps sending exactly as before. The thresholds sit below Amazon SES's
review marks (5 % bounces, 0.1 % complaints), so Postroom pauses the one tenant before SES reviews the whole account.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ReputationSettings"]


class ReputationSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    enabled: bool = False  # POSTROOM_REPUTATION_BREAKER
    bounce_rate: float = Field(default=0.04, gt=0, le=1)  # hard bounces / (delivered + bounced)
    complaint_rate: float = Field(default=0.0008, gt=0, le=1)  # complaints / (delivered + bounced)
    # Below this many outcomes in the window a rate says little (two bounces of ten sends are 20 %): no trip.
    min_volume: int = Field(default=200, ge=1)
    window_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    # How long a held message waits before the worker looks again (SQS DelaySeconds allows at most 900).
    hold_seconds: int = Field(default=300, ge=0, le=900)

    @property
    def bucket_seconds(self) -> int:
        """The window is counted in 24 buckets: the rate rolls forward one bucket at a time."""
        return max(1, self.window_seconds // 24)
