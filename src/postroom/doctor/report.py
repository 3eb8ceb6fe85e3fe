"""The doctor's findings: one :class:`Check` per topic, each with a status, plain-words explanation and the DNS
records that would fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Check", "CheckStatus", "Fix", "Report"]


class CheckStatus(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but weaker than it should be, or worth knowing
    FAIL = "fail"  # mail will be rejected, marked as spam, or cannot be authenticated
    SKIP = "skip"  # not applicable, or not checkable (the DNS did not answer; information missing)


@dataclass(frozen=True)
class Fix:
    """A record to publish (or to change to this value)."""

    name: str
    type: str
    value: str

    def zone_line(self) -> str:
        value = f'"{self.value}"' if self.type == "TXT" else self.value
        return f"{self.name}. {self.type} {value}"


@dataclass
class Check:
    name: str  # "spf", "dkim", "dmarc", "mx", "mta-sts"
    status: CheckStatus
    summary: str  # one sentence: what is wrong, or that all is well
    details: list[str] = field(default_factory=list)  # the evidence: records found, why they do not do
    fixes: list[Fix] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "details": self.details,
            "fix": [{"name": f.name, "type": f.type, "value": f.value} for f in self.fixes],
        }


@dataclass
class Report:
    domain: str
    delivery: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """No check failed (warnings and skips do not count)."""
        return all(check.status is not CheckStatus.FAIL for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "delivery": self.delivery,
            "ok": self.ok,
            "checks": [check.to_dict() for check in self.checks],
        }

    def to_text(self) -> str:
        marks = {CheckStatus.OK: "OK  ", CheckStatus.WARN: "WARN", CheckStatus.FAIL: "FAIL", CheckStatus.SKIP: "SKIP"}
        lines = [f"{self.domain} (delivery: {self.delivery})"]
        for check in self.checks:
            lines.append(f"  {marks[check.status]} {check.name:<8} {check.summary}")
            lines.extend(f"                {detail}" for detail in check.details)
            lines.extend(f"       publish  {fix.zone_line()}" for fix in check.fixes)
        failed = sum(c.status is CheckStatus.FAIL for c in self.checks)
        warned = sum(c.status is CheckStatus.WARN for c in self.checks)
        lines.append(f"{failed} failed, {warned} warning(s)" if failed or warned else "all checks passed")
        return "\n".join(lines)
