"""Presence from heartbeats (docs/realtime.md): pure state with a TTL, no I/O.

Every gateway publishes, for each user with a socket on it, a heartbeat on
`ledgerline.rt.presence.<token>` every HEARTBEAT_SECONDS (and at once when the user's first socket
connects, goes away or comes back, or when the last one leaves: status `offline`). A user's status is
the best one among the gateways whose heartbeat has not expired: online > away > offline. A killed
gateway sends nothing more, so its users go offline once TTL_SECONDS pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, cast

Status = Literal["online", "away", "offline"]
STATUSES: tuple[Status, ...] = ("offline", "away", "online")  # worst to best

HEARTBEAT_SECONDS = 10.0
# Three heartbeats: one lost message (core NATS is at most once) does not flap a user offline.
TTL_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    user_id: str
    gateway: str
    status: Status
    ttl: float = TTL_SECONDS

    def encode(self) -> bytes:
        body = {"user_id": self.user_id, "gateway": self.gateway, "status": self.status, "ttl": self.ttl}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat | None:
        try:
            body = json.loads(data)
            status = body["status"]
            if status not in STATUSES:
                return None
            return cls(str(body["user_id"]), str(body["gateway"]), cast(Status, status), float(body["ttl"]))
        except (ValueError, KeyError, TypeError):
            return None


class PresenceTable:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, tuple[Status, float]]] = {}

    def status(self, user_id: str, now: float) -> Status:
        best: Status = "offline"
        for status, expires in self._entries.get(user_id, {}).values():
            if expires > now and STATUSES.index(status) > STATUSES.index(best):
                best = status
        return best

    def observe(self, beat: Heartbeat, now: float) -> Status | None:
        """Record a heartbeat; the user's new status when it changed, else None."""
        before = self.status(beat.user_id, now)
        gateways = self._entries.setdefault(beat.user_id, {})
        if beat.status == "offline":
            gateways.pop(beat.gateway, None)
        else:
            gateways[beat.gateway] = (beat.status, now + beat.ttl)
        if not gateways:
            del self._entries[beat.user_id]
        after = self.status(beat.user_id, now)
        return after if after != before else None

    def sweep(self, now: float) -> list[str]:
        """Forget expired heartbeats; the users who went offline because of it."""
        gone: list[str] = []
        for user, gateways in list(self._entries.items()):
            for gateway, (_, expires) in list(gateways.items()):
                if expires <= now:
                    del gateways[gateway]
            if not gateways:
                del self._entries[user]
                gone.append(user)
        return gone

    def known(self) -> list[str]:
        return list(self._entries)
