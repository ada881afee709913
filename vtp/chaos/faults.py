"""The fault schedule (from the seed) and the injector that carries it out on a live stack."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from enum import StrEnum

from vtp.devstack.stack import ServiceProcess, Stack


class Fault(StrEnum):
    KILL_CLAIMS = "kill_claims"
    KILL_CARDS = "kill_cards"
    KILL_NOTIFICATIONS = "kill_notifications"
    CRASH_AFTER_COMMIT = "crash_after_commit"  # claims dies between DB and offset commit
    KILL_DURING_REBALANCE = "kill_during_rebalance"  # two claims consumers, both hit
    PAUSE_BROKER = "pause_broker"
    RESTART_POSTGRES = "restart_postgres"
    SMTP_DOWN = "smtp_down"


_WEIGHTS = (
    (Fault.KILL_CLAIMS, 4),
    (Fault.KILL_CARDS, 1),
    (Fault.KILL_NOTIFICATIONS, 2),
    (Fault.CRASH_AFTER_COMMIT, 3),
    (Fault.KILL_DURING_REBALANCE, 2),
    (Fault.PAUSE_BROKER, 2),
    (Fault.RESTART_POSTGRES, 2),
    (Fault.SMTP_DOWN, 2),
)


@dataclass(frozen=True)
class PlannedFault:
    at_checkin: int  # injected when this many check-ins have been emitted
    fault: Fault
    seconds: float  # how long it lasts (pause, outage, time before restart)
    target: int  # which claims process, for faults that pick one


def schedule(seed: int, checkins: int, faults: int) -> list[PlannedFault]:
    """`faults` faults spread over the stream; every kind appears at least once."""
    rng = random.Random(seed * 7919 + 1)
    kinds = [f for f, _ in _WEIGHTS]
    chosen = list(kinds) + rng.choices(
        kinds, [w for _, w in _WEIGHTS], k=max(0, faults - len(kinds))
    )
    rng.shuffle(chosen)
    points = sorted(rng.sample(range(checkins // 20, checkins), k=len(chosen)))
    return [
        PlannedFault(at, fault, round(rng.uniform(0.5, 4.0), 2), rng.randrange(2))
        for at, fault in zip(points, chosen, strict=True)
    ]


class Injector:
    def __init__(self, stack: Stack, log: list[str]) -> None:
        self.stack = stack
        self.log = log
        self.injected = 0

    async def inject(self, planned: PlannedFault) -> None:
        self.injected += 1
        self.log.append(f"{planned.at_checkin}: {planned.fault.value} ({planned.seconds} s)")
        match planned.fault:
            case Fault.KILL_CLAIMS:
                await self._kill_and_restart(self._claims(planned.target), planned.seconds)
            case Fault.KILL_CARDS:
                await self._kill_and_restart(self.stack.service("cards"), planned.seconds)
            case Fault.KILL_NOTIFICATIONS:
                await self._kill_and_restart(self.stack.service("notifications"), planned.seconds)
            case Fault.CRASH_AFTER_COMMIT:
                await self._crash_after_commit(self._claims(planned.target))
            case Fault.KILL_DURING_REBALANCE:
                first, second = self._claims(planned.target), self._claims(1 - planned.target)
                await self._kill_and_restart(first, 0.2)
                await asyncio.sleep(0.5)  # the group is rebalancing onto the restarted one
                await self._kill_and_restart(second, 0.2)
            case Fault.PAUSE_BROKER:
                if self.stack.broker is not None:
                    self.stack.broker.pause()
                    await asyncio.sleep(planned.seconds)
                    self.stack.broker.resume()
            case Fault.RESTART_POSTGRES:
                if self.stack.postgres is not None:
                    await asyncio.to_thread(self.stack.postgres.restart_fast)
            case Fault.SMTP_DOWN:
                if self.stack.smtp is not None:
                    await asyncio.to_thread(self.stack.smtp.stop)
                    await asyncio.sleep(planned.seconds * 2)
                    await asyncio.to_thread(self.stack.smtp.start)

    def _claims(self, index: int) -> ServiceProcess:
        claims = [s for s in self.stack.services if s.name == "claims"]
        return claims[index % len(claims)]

    async def _kill_and_restart(self, service: ServiceProcess, seconds: float) -> None:
        service.kill()
        await asyncio.sleep(seconds)
        service.start()

    async def _crash_after_commit(self, service: ServiceProcess) -> None:
        """Restart the process armed to SIGKILL itself after its next batch's DB commit."""
        service.kill()
        service.env["VTP_FAULT_CRASH_AFTER_BATCHES"] = "1"
        service.start()
        service.env.pop("VTP_FAULT_CRASH_AFTER_BATCHES")
        self.log.append(f"   armed {service.log_path.name}: dies after its next commit")

    async def revive(self) -> None:
        """Restart any service process that is down (e.g. after crashing itself)."""
        for service in self.stack.services:
            if service.proc is not None and service.proc.poll() is not None:
                service.start()
