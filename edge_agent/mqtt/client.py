"""paho-mqtt behind one door: the only module that imports paho (2.x, callback API v2).

:func:`new_client` turns :class:`MqttSettings` into a configured paho client (protocol,
credentials, TLS, reconnect delays with full jitter: :mod:`edge_agent.mqtt.backoff`).
:class:`~edge_agent.mqtt.Publisher` and :class:`~edge_agent.mqtt.Subscriber` take a
``client_factory`` of this shape, so tests hand them a stand-in (``tests/fakes/mqtt.py``)
the way gpiozero takes ``pin_factory=``.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.mqtt.backoff import FullJitterBackoff, Uniform
from edge_agent.mqtt.failover import BrokerChooser
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.mqtt.settings import Protocol as MqttProtocol
from edge_agent.mqtt.wire import properties_block

__all__ = [
    "CLEAN_START_FIRST_ONLY",
    "MAX_COMMAND_PACKET_BYTES",
    "CleanStartOption",
    "Client",
    "ClientFactory",
    "ConnectFlags",
    "DisconnectFlags",
    "JitteredClient",
    "MQTTErrorCode",
    "MQTTMessage",
    "MQTTMessageInfo",
    "PackedProperties",
    "PacketTypes",
    "Properties",
    "ReasonCode",
    "connect_properties",
    "new_client",
    "new_properties",
    "reload_tls",
]

_log = logging.getLogger("edge_agent.mqtt")

Client = paho.Client
ConnectFlags = paho.ConnectFlags
DisconnectFlags = paho.DisconnectFlags
MQTTMessage = paho.MQTTMessage
MQTTMessageInfo = paho.MQTTMessageInfo
CleanStartOption = paho.CleanStartOption
CLEAN_START_FIRST_ONLY = paho.MQTT_CLEAN_START_FIRST_ONLY


MAX_COMMAND_PACKET_BYTES = 1 << 20
"""The largest packet the agent's connection takes (MQTT 5 CONNECT's Maximum Packet Size):
commands are at most 64 kB (``remote.MAX_PAYLOAD_BYTES``), so one between that and 1 MiB is
still refused with its size; the broker drops larger ones, which paho would read whole."""

RECONNECT_AFTER_RELOAD_S = 1.0  # seen: 0-200 ms let the broker publish our will (takeover)


class JitteredClient(paho.Client):
    """paho's client, its automatic reconnects spaced by :class:`FullJitterBackoff` and
    sent to the broker :class:`BrokerChooser` picks from the list (failover).

    paho's network thread (``loop_start``) calls ``_reconnect_wait`` before every
    reconnect attempt, and waits there for a delay that doubles without jitter. Here the
    delay is drawn from ``backoff`` and handed to paho (``reconnect_delay_set``) just
    before paho's own wait runs, so its early exit on ``disconnect()``/``loop_stop()`` is
    kept; after the wait the host and port are set to the chosen broker's (paho dials
    ``self.host`` in ``reconnect``). paho clears its delay when a CONNACK succeeds: that
    is how a lost connection that had worked is told from a failed attempt.
    tests/unit/mqtt/test_backoff.py fails if paho drops that hook.
    """

    backoff: FullJitterBackoff
    brokers: BrokerChooser
    # At least this long before the next reconnect, once (set after our own DISCONNECT):
    # the broker must have closed the old connection before the same client id comes
    # back, or it takes the session over and publishes the old connection's Last Will.
    hold_off_s: float = 0.0

    def connect_async(self, host: str, port: int = 1883, *args: Any, **kwargs: Any) -> None:
        super().connect_async(host, port, *args, **kwargs)
        # Not None: a first attempt that fails is a failure, not "a connection that worked".
        self._reconnect_delay = 0

    def _reconnect_wait(self) -> None:
        worked = self._reconnect_delay is None  # paho cleared it: a CONNACK accepted us
        attempt = self.brokers.next_attempt(connection_worked=worked)
        if worked or attempt.restart_backoff:
            self.backoff.reset()
        # A planned move (failback) goes at once: the broker we left is not coming back.
        delay_s = 0.0 if attempt.immediate else max(self.backoff.next_delay_s(), self.hold_off_s)
        self.hold_off_s = 0.0
        # Fractions of a second are fine: paho's wait loop sleeps min(remaining, 1) s.
        self.reconnect_delay_set(min_delay=delay_s, max_delay=delay_s)  # type: ignore[arg-type]
        broker = self.brokers.brokers[attempt.index]
        if attempt.moved:
            _log.warning("MQTT: trying the next broker of the list, %s, in %.2f s", broker, delay_s)
        else:
            _log.debug("reconnecting in %.2f s (attempt %d)", delay_s, self.backoff.attempt)
        super()._reconnect_wait()
        # Not the host/port setters: they refuse while paho's state is "connection lost".
        self._host, self._port = broker.host, broker.port


class ClientFactory(Protocol):
    """Makes the client a Publisher or Subscriber talks through (:func:`new_client`)."""

    def __call__(self, settings: MqttSettings, *, clean_session: bool) -> paho.Client: ...


def _protocol(protocol: MqttProtocol) -> MQTTProtocolVersion:
    if protocol == "5":
        return MQTTProtocolVersion.MQTTv5
    if protocol == "3.1.1":
        return MQTTProtocolVersion.MQTTv311
    raise ValueError(f"MQTT protocol must be '5' or '3.1.1', not {protocol!r}")


class _NotConnectedIsNoError(logging.Filter):
    """paho logs ``Client is not connected. Socket: None)…`` as an ERROR each time its loop
    finds no socket between connection attempts: that is the publisher's ``cannot connect``
    warning (once an outage, with the broker's address) said cryptically; kept at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def new_client(
    settings: MqttSettings, *, clean_session: bool, uniform: Uniform | None = None
) -> paho.Client:
    """A paho client for ``settings``; ``clean_session`` matters only with MQTT 3.1.1
    (MQTT 5 asks for a clean start in ``connect``). Raises TlsConfigError (a ValueError)
    for unusable TLS files before any socket is opened. Reconnects wait a full-jitter
    delay between 0 and ``min(reconnect_max_delay_s, reconnect_min_delay_s * 2**attempt)``
    (``uniform``: the random source, for tests)."""
    s = settings
    client = JitteredClient(
        CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        # paho rejects clean_session with MQTT 5 (clean_start is given to connect()).
        clean_session=clean_session if s.protocol == "3.1.1" else None,
        protocol=_protocol(s.protocol),
    )
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    if s.uses_tls:
        from edge_agent.security import build_tls_context  # (docs/security.md)

        # Server verified against the CA and the host name dialled (hostname checking is
        # off only with an explicit tls_insecure). Raises TlsConfigError, e.g. for a key
        # file others can read, before any socket is opened.
        context: ssl.SSLContext = build_tls_context(
            ca_file=s.tls_ca_file,
            cert_file=s.tls_cert_file,
            key_file=s.tls_key_file,
            insecure=s.tls_insecure,
        )
        client.tls_set_context(context)
        client.tls_insecure_set(s.tls_insecure)
    elif s.password is not None:
        from edge_agent.security import plaintext_password_warning

        _log.warning(plaintext_password_warning())
    paho_log = _log.getChild("paho")
    if not any(isinstance(f, _NotConnectedIsNoError) for f in paho_log.filters):
        paho_log.addFilter(_NotConnectedIsNoError())
    client.enable_logger(paho_log)  # paho's own packet log, at DEBUG
    client.backoff = FullJitterBackoff(
        s.reconnect_min_delay_s, s.reconnect_max_delay_s, uniform=uniform
    )
    client.brokers = BrokerChooser(s.broker_list, s.failover)
    return client


def reload_tls(client: paho.Client, settings: MqttSettings) -> None:
    """Load the certificate and key files again (renewed in place, docs/enrolment.md)
    into the client's TLS context and end the connection with a normal DISCONNECT:
    paho reconnects with the new certificate, the session is kept and no Last Will is
    sent. Raises TlsConfigError for unusable files (the old connection is then kept)."""
    from edge_agent.security import TlsConfigError, check_certificate_file, check_private_key_file

    context: ssl.SSLContext | None = client._ssl_context
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    if context is None or cert_file is None or key_file is None:
        raise TlsConfigError("this MQTT link has no client certificate to reload")
    check_certificate_file(cert_file)
    check_private_key_file(key_file)
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as error:
        raise TlsConfigError(f"renewed certificate {cert_file} cannot be used: {error}") from None
    if isinstance(client, JitteredClient):
        client.hold_off_s = RECONNECT_AFTER_RELOAD_S
    # Not client.disconnect(): that would stop paho's reconnect loop for good.
    client._send_disconnect()


def new_properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def connect_properties(
    settings: MqttSettings, *, maximum_packet_bytes: int | None = None
) -> tuple[CleanStartOption, Properties | None]:
    """``clean_start`` and CONNECT properties: with MQTT 5 a kept session lasts
    ``session_expiry_s`` (commands queued for us while we were away still arrive), and
    ``maximum_packet_bytes`` is the largest packet the broker may send us (it drops
    larger ones: paho would read them whole into memory)."""
    if settings.protocol != "5":
        return CLEAN_START_FIRST_ONLY, None
    properties = new_properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = settings.session_expiry_s
    if maximum_packet_bytes is not None:
        properties.MaximumPacketSize = maximum_packet_bytes
    return not settings.keeps_session, properties


class PackedProperties(Properties):
    """Properties already in wire format (:mod:`edge_agent.mqtt.wire`): paho only calls
    ``pack()`` (and ``str()``)."""

    def __init__(self, body: bytes) -> None:  # no super().__init__(): nothing else is read
        object.__setattr__(self, "_packed", properties_block(body))

    def pack(self) -> bytes:
        packed: bytes = object.__getattribute__(self, "_packed")
        return packed

    def __str__(self) -> str:
        return f"[{len(self.pack())} bytes of properties]"
