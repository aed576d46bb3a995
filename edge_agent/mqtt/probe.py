"""The self-test's look at the broker: connect, publish a birth, see a command come back.

One short-lived connection, nothing kept: a clean session that expires at once, a client
id of its own (``{client_id}-selftest`` from the caller) so a running agent is not thrown
off, no Last Will, and a birth that is *not* retained, so the device's retained status
is left as it is. The command loop-back publishes a ``ping`` on the device's own
``{root}/cmd/ping`` and waits for it on the device's command subscription: that proves
the broker lets this device write and read its command topics, without the centre (a
running agent answers that ping too, harmlessly, on ``{root}/reply/selftest``).
With ``centre_wait_s`` it then waits for a ``ping`` from someone else (the centre) and
answers it, as the agent would: a real round trip.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from edge_agent.encode import Topics, encode_status
from edge_agent.mqtt.client import (
    CLEAN_START_FIRST_ONLY,
    Client,
    ClientFactory,
    ConnectFlags,
    DisconnectFlags,
    MQTTMessage,
    PacketTypes,
    Properties,
    ReasonCode,
    new_client,
    new_properties,
)
from edge_agent.mqtt.settings import MqttSettings

__all__ = ["BrokerProbe", "probe_broker"]


@dataclass(frozen=True)
class BrokerProbe:
    """What one probe found; a ``None`` time means that step did not succeed (see its
    error, or it was never reached)."""

    tls: bool
    connect_ms: float | None = None
    connect_error: str | None = None
    birth_ms: float | None = None
    birth_error: str | None = None
    loopback_ms: float | None = None
    loopback_error: str | None = None
    centre_wait_s: float = 0.0
    centre_ms: float | None = None  # since the wait began, when the centre's ping came
    centre_error: str | None = None


class _Probe:
    """paho's callbacks (network thread) record facts and set events; nothing slow."""

    def __init__(self, topics: Topics, nonce: bytes) -> None:
        self.topics = topics
        self.nonce = nonce
        self.own_payload = b""  # MQTT 3.1.1 has no correlation data: our ping by its body
        self.connack = threading.Event()
        self.connect_reason: str | None = None
        self.disconnected: str | None = None
        self.subscribed = threading.Event()
        self.subscribe_error: str | None = None
        self.acks: dict[int, str | None] = {}
        self.acked = threading.Condition()
        self.looped_back = threading.Event()
        self.centre_ping = threading.Event()
        self.centre_reply_mid: int | None = None

    def on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.connect_reason = f"the broker refused the connection: {reason_code}"
        self.connack.set()

    def on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.disconnected = f"the broker closed the connection: {reason_code}"
        self.connack.set()
        self.subscribed.set()
        with self.acked:
            self.acked.notify_all()

    def on_subscribe(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            self.subscribe_error = f"the broker refused the command subscription: {failed[0]}"
        self.subscribed.set()

    def on_publish(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self.acked:
            self.acks[mid] = str(reason_code) if reason_code.is_failure else None
            self.acked.notify_all()

    def on_message(self, client: Client, userdata: object, msg: MQTTMessage) -> None:
        if msg.topic != self.topics.command("ping") or msg.retain:
            return
        correlation = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        if correlation == self.nonce or (self.own_payload and msg.payload == self.own_payload):
            self.looped_back.set()
            return
        # Someone else's ping: the centre. Answer as the agent would (edge_agent.remote).
        requested = getattr(msg.properties, "ResponseTopic", None) if msg.properties else None
        topic = (
            requested
            if isinstance(requested, str) and self.topics.is_reply(requested)
            else self.topics.reply("ping")
        )
        properties: Properties | None = None
        if msg.properties is not None:  # MQTT 5
            properties = new_properties(PacketTypes.PUBLISH)
            properties.ContentType = "application/json"
            properties.MessageExpiryInterval = 60
            if correlation:
                properties.CorrelationData = correlation
        body = {"ok": True, "ts": round(time.time(), 3), "selftest": True}
        info = client.publish(
            topic, json.dumps(body).encode(), qos=1, retain=False, properties=properties
        )
        self.centre_reply_mid = info.mid
        self.centre_ping.set()

    def wait_ack(self, mid: int, timeout_s: float) -> tuple[bool, str | None]:
        """(acknowledged, refusal reason) for publish ``mid``."""
        with self.acked:
            self.acked.wait_for(
                lambda: mid in self.acks or self.disconnected is not None, timeout_s
            )
            if mid in self.acks:
                return True, self.acks[mid]
            return False, self.disconnected


def _elapsed_ms(start_s: float) -> float:
    return round((time.monotonic() - start_s) * 1000.0, 1)


def _connect_error(error: Exception, settings: MqttSettings) -> str:
    where = f"{settings.host}:{settings.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was not accepted at {where}: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake with {where} failed: {error.reason or error}"
    if isinstance(error, OSError):
        return f"cannot reach {where}: {error.strerror or error}"
    return f"cannot connect to {where}: {error}"


def probe_broker(
    settings: MqttSettings,
    topics: Topics,
    *,
    birth: Mapping[str, object],
    timeout_s: float = 10.0,
    centre_wait_s: float = 0.0,
    on_ready: Callable[[BrokerProbe], None] | None = None,
    client_factory: ClientFactory = new_client,
) -> BrokerProbe:
    """Connect with ``settings`` (a clean session), publish a non-retained ``online``
    status carrying ``birth``, loop a ``ping`` back through the broker; every step waits
    at most ``timeout_s``. Never raises for a broker problem: it is in the result.
    ``on_ready`` gets the result so far once the loop-back worked, before the wait for
    the centre begins (the technician is told to have the centre send its ping now)."""
    nonce = secrets.token_bytes(8)
    probe = _Probe(topics, nonce)
    tls = settings.uses_tls
    try:
        client = client_factory(settings, clean_session=True)
    except ValueError as error:  # TlsConfigError: unusable TLS files
        return BrokerProbe(tls, connect_error=f"TLS files: {error}")
    client.on_connect = probe.on_connect
    client.on_disconnect = probe.on_disconnect
    client.on_subscribe = probe.on_subscribe
    client.on_publish = probe.on_publish
    client.on_message = probe.on_message
    v5 = settings.protocol == "5"
    properties: Properties | None = None
    if v5:
        properties = new_properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
    start_s = time.monotonic()
    try:
        client.connect(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            # 3.1.1: the client was made with clean_session=True instead.
            clean_start=True if v5 else CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
    except (OSError, ValueError) as error:
        return BrokerProbe(tls, connect_error=_connect_error(error, settings))
    client.loop_start()
    try:
        result = _run(client, probe, settings, birth, start_s, timeout_s)
        if centre_wait_s <= 0 or result.loopback_ms is None:
            return result
        if on_ready is not None:
            on_ready(result)
        return _await_centre(probe, replace(result, centre_wait_s=centre_wait_s), timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def _run(
    client: Client,
    probe: _Probe,
    settings: MqttSettings,
    birth: Mapping[str, object],
    start_s: float,
    timeout_s: float,
) -> BrokerProbe:
    tls, topics, v5 = settings.uses_tls, probe.topics, settings.protocol == "5"
    if not probe.connack.wait(timeout_s):
        return BrokerProbe(tls, connect_error=f"no answer from the broker within {timeout_s} s")
    if probe.connect_reason or probe.disconnected:
        return BrokerProbe(tls, connect_error=probe.connect_reason or probe.disconnected)
    connect_ms = _elapsed_ms(start_s)

    status_properties: Properties | None = None
    if v5:
        status_properties = new_properties(PacketTypes.PUBLISH)
        status_properties.ContentType = "application/json"
    birth_start_s = time.monotonic()
    info = client.publish(
        topics.status,
        encode_status("online", birth, ts=time.time()),
        qos=1,
        retain=False,  # the device's retained status is left alone
        properties=status_properties,
    )
    acked, refusal = probe.wait_ack(info.mid, timeout_s)
    if not acked or refusal:
        why = refusal or f"no PUBACK within {timeout_s} s"
        return BrokerProbe(tls, connect_ms, birth_error=f"birth on {topics.status}: {why}")
    birth_ms = _elapsed_ms(birth_start_s)

    client.subscribe(topics.command("ping"), qos=1)
    loop_start_s = time.monotonic()
    loopback_ms: float | None = None
    loopback_error: str | None = None
    if not probe.subscribed.wait(timeout_s) or probe.subscribe_error or probe.disconnected:
        loopback_error = (
            probe.subscribe_error or probe.disconnected or f"no SUBACK within {timeout_s} s"
        )
    else:
        ping_properties: Properties | None = None
        if v5:
            ping_properties = new_properties(PacketTypes.PUBLISH)
            ping_properties.CorrelationData = probe.nonce
            ping_properties.ResponseTopic = topics.reply("selftest")
            ping_properties.MessageExpiryInterval = 30
        payload = b"{}" if v5 else json.dumps({"selftest": probe.nonce.hex()}).encode()
        probe.own_payload = b"" if v5 else payload
        client.publish(topics.command("ping"), payload, qos=1, properties=ping_properties)
        if probe.looped_back.wait(timeout_s):
            loopback_ms = _elapsed_ms(loop_start_s)
        else:
            loopback_error = (
                f"our ping on {topics.command('ping')} did not come back within {timeout_s} s "
                "(the broker's ACL may not let this device read or write its cmd/ topics)"
            )
    return BrokerProbe(
        tls, connect_ms, birth_ms=birth_ms, loopback_ms=loopback_ms, loopback_error=loopback_error
    )


def _await_centre(probe: _Probe, result: BrokerProbe, timeout_s: float) -> BrokerProbe:
    centre_wait_s = result.centre_wait_s
    wait_start_s = time.monotonic()
    if not probe.centre_ping.wait(centre_wait_s):
        return _with_centre(
            result,
            None,
            f"no ping from the centre on {probe.topics.command('ping')} within {centre_wait_s:g} s",
        )
    centre_ms = _elapsed_ms(wait_start_s)
    mid = probe.centre_reply_mid
    acked, refusal = probe.wait_ack(mid, timeout_s) if mid is not None else (False, None)
    if not acked or refusal:
        return _with_centre(result, None, f"our reply was not accepted: {refusal or 'no PUBACK'}")
    return _with_centre(result, centre_ms, None)


def _with_centre(result: BrokerProbe, centre_ms: float | None, error: str | None) -> BrokerProbe:
    return replace(result, centre_ms=centre_ms, centre_error=error)
