"""What a registry probe can say about an image: a value type shared by the probe (which
produces it), the decision (which consumes it) and `scan` (which shows it).

Kept apart from the probe itself so that deciding never imports the network stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    PUBLIC = "public"  # anonymous pull allowed (2xx)
    PRIVATE = "private"  # 401/403: credentials needed
    MISSING = "missing"  # 404: absent, or hidden from anonymous users
    UNKNOWN = "unknown"  # 429, 5xx, timeouts, network errors: no answer


@dataclass(frozen=True, slots=True)
class ProbeResult:
    verdict: Verdict
    detail: str  # short human text: "HTTP 200", "401 Basic challenge", "timeout after 5.0s"
    cached: bool = False  # answered from the cache without a network request


# (registry, repository, reference) as given by ImageRef: what one probe answers for.
ProbeKey = tuple[str, str, str]
