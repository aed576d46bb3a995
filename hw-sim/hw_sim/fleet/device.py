"""One simulated device: the agent's own :class:`~edge_agent.outbox.Outbox` (SQLite) and
:class:`~edge_agent.mqtt.Publisher` (pacer, full-jitter reconnects), with its paho
client's callbacks watched, never changed: when each connection came up, when each
``seq`` was first published and when its PUBACK came."""

from __future__ import annotations

import random
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import OutboxConfig
from edge_agent.encode import Topics
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher, new_client
from edge_agent.mqtt.client import Client
from edge_agent.outbox import Outbox
from hw_sim.fleet.profiles import SiteProfile, synthetic_messages

__all__ = ["DeviceResult", "SimDevice"]

_SEQ_PROPERTY = b"\x26\x00\x03seq"  # user property "seq" in a packed MQTT 5 property block


def seq_of(properties: object) -> int | None:
    """The ``seq`` user property of a PUBLISH the drain sent (None for status, volatile)."""
    pack = getattr(properties, "pack", None)
    if pack is None:
        return None
    packed: bytes = pack()
    at = packed.find(_SEQ_PROPERTY)
    if at < 0:
        return None
    at += len(_SEQ_PROPERTY)
    (length,) = struct.unpack_from(">H", packed, at)
    return int(packed[at + 2 : at + 2 + length])


@dataclass(frozen=True)
class DeviceResult:
    """What a device saw, sent back to the fleet's main process (picklable)."""

    device_id: str
    last_seq: int
    enqueued_at: dict[int, float]  # seq -> when it was stored
    connected_at: tuple[float, ...]  # every CONNACK that succeeded
    connect_failures: int
    first_sent_at: dict[int, float]
    acked_at: dict[int, float]
    depth_at_end: int
    reconnects: int
    last_error: str | None


@dataclass
class _Watch:
    lock: threading.Lock = field(default_factory=threading.Lock)
    mids: dict[int, int] = field(default_factory=dict)  # paho mid -> seq
    connected_at: list[float] = field(default_factory=list)
    connect_failures: int = 0
    first_sent_at: dict[int, float] = field(default_factory=dict)
    acked_at: dict[int, float] = field(default_factory=dict)


class SimDevice:
    """A device without a camera: :meth:`emit` stores synthetic messages in the outbox and
    wakes the publisher, as the pipeline's sink does."""

    def __init__(
        self,
        device_id: str,
        settings: MqttSettings,
        topics: Topics,
        outbox_path: Path,
        drain: DrainSettings,
        profile: SiteProfile,
        seed: int,
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.topics = topics
        self._rng = random.Random(seed)
        self._boot_id = f"{seed & 0xFFFFFFFF:08x}"
        self.outbox = Outbox.from_config(OutboxConfig(path=outbox_path))
        self._enqueued_at: dict[int, float] = {}
        self._last_seq = 0
        self._watch = _Watch()
        clients: list[Client] = []

        def client_factory(settings: MqttSettings, *, clean_session: bool) -> Client:
            clients.append(new_client(settings, clean_session=clean_session))
            return clients[0]

        self.publisher = Publisher(
            settings,
            self.outbox,
            topics,
            birth_payload={"fleet_sim": True},
            drain=drain,
            client_factory=client_factory,
        )
        self._instrument(clients[0])

    def _instrument(self, client: Any) -> None:
        """Wrap (not replace) the publisher's callbacks and paho's ``publish``."""
        watch = self._watch
        on_connect, on_fail, on_publish = (
            client.on_connect,
            client.on_connect_fail,
            client.on_publish,
        )
        publish = client.publish

        def watched_publish(*args: Any, **kwargs: Any) -> Any:
            info = publish(*args, **kwargs)
            seq = seq_of(kwargs.get("properties"))
            if seq is not None:
                with watch.lock:
                    watch.mids[info.mid] = seq
                    watch.first_sent_at.setdefault(seq, time.time())
            return info

        def watched_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                with watch.lock:
                    watch.connected_at.append(time.time())
            on_connect(c, userdata, flags, reason, props)

        def watched_fail(c: Any, userdata: Any) -> None:
            with watch.lock:
                watch.connect_failures += 1
            on_fail(c, userdata)

        def watched_publish_ack(c: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
            with watch.lock:
                seq = watch.mids.pop(mid, None)
                if seq is not None and not reason.is_failure:
                    watch.acked_at.setdefault(seq, time.time())
            on_publish(c, userdata, mid, reason, props)

        client.publish = watched_publish
        client.on_connect = watched_connect
        client.on_connect_fail = watched_fail
        client.on_publish = watched_publish_ack

    def start(self) -> None:
        self.publisher.start()

    @property
    def connected(self) -> bool:
        return self.publisher.connected

    def emit(self, now_s: float) -> None:
        messages = synthetic_messages(self.topics, self.profile, self._rng, now_s, self._boot_id)
        stored = self.outbox.enqueue_many(messages)
        for message in stored:
            self._enqueued_at[message.seq] = now_s
        self._last_seq = stored[-1].seq
        self.publisher.wake()

    def drained(self) -> bool:
        return self.outbox.depth() == 0

    def stop(self, timeout_s: float) -> DeviceResult:
        self.publisher.stop(timeout_s)
        stats = self.publisher.stats()
        depth = self.outbox.depth()
        self.outbox.close()
        with self._watch.lock:
            watch = self._watch
            return DeviceResult(
                device_id=self.device_id,
                last_seq=self._last_seq,
                enqueued_at=dict(self._enqueued_at),
                connected_at=tuple(watch.connected_at),
                connect_failures=watch.connect_failures,
                first_sent_at=dict(watch.first_sent_at),
                acked_at=dict(watch.acked_at),
                depth_at_end=depth,
                reconnects=stats.reconnects,
                last_error=stats.last_error,
            )
