"""The device's status LED: what a technician on a ladder can read without a laptop.

One LED on a GPIO pin tells the worst thing that is wrong, by its rhythm:

==============  =============================  =========================================
condition       LED                            meaning
==============  =============================  =========================================
starting        fast flicker (0.1 s on/off)    the agent is loading its model, connecting
ok              steady on                      frames arrive from every camera, uplink up
uplink_down     slow blink (1 s on, 1 s off)   no broker: events are kept in the outbox
camera_fault    short flash every 2 s          a camera sends no frames (cable, power, URL)
stopped         off                            the agent is not running
==============  =============================  =========================================

A camera fault outranks the uplink: with no pictures nothing is being recorded at all,
while an uplink outage loses nothing (the outbox keeps it). This is the only module that
imports gpiozero; a device without a configured LED uses ``NoIndicator``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge_agent.config import StatusLedConfig

log = logging.getLogger(__name__)


class Condition(enum.Enum):
    STARTING = "starting"
    OK = "ok"
    UPLINK_DOWN = "uplink_down"
    CAMERA_FAULT = "camera_fault"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Health:
    """What the agent knows about itself at one moment."""

    cameras: int
    cameras_delivering: int  # cameras whose last frame is recent enough
    uplink_connected: bool


def condition_of(health: Health) -> Condition:
    """The worst thing wrong, for the LED (and the ``status`` command)."""
    if health.cameras_delivering < health.cameras:
        return Condition.CAMERA_FAULT
    if not health.uplink_connected:
        return Condition.UPLINK_DOWN
    return Condition.OK


@dataclass(frozen=True)
class BlinkPattern:
    on_s: float
    off_s: float  # 0: steady on; on_s 0: off


PATTERNS: dict[Condition, BlinkPattern] = {
    Condition.STARTING: BlinkPattern(0.1, 0.1),
    Condition.OK: BlinkPattern(1.0, 0.0),
    Condition.UPLINK_DOWN: BlinkPattern(1.0, 1.0),
    Condition.CAMERA_FAULT: BlinkPattern(0.1, 1.9),
    Condition.STOPPED: BlinkPattern(0.0, 1.0),
}


class StatusError(Exception):
    """The status LED could not be set up; the message says what to fix."""


class StatusIndicator(Protocol):
    @property
    def condition(self) -> Condition | None: ...

    @property
    def description(self) -> str: ...

    @property
    def unavailable(self) -> str | None:
        """Why a configured LED is not lit now (None: it works, or none is configured)."""
        ...

    def show(self, condition: Condition) -> None: ...

    def close(self) -> None: ...


class NoIndicator:
    """No LED (none configured, or it could not be set up: ``problem`` says why);
    remembers the condition for the ``status`` command."""

    def __init__(self, problem: str | None = None) -> None:
        self._condition: Condition | None = None
        self.problem = problem

    @property
    def condition(self) -> Condition | None:
        return self._condition

    @property
    def description(self) -> str:
        return "none" if self.problem is None else f"error: {self.problem}"

    @property
    def unavailable(self) -> str | None:
        return self.problem

    def show(self, condition: Condition) -> None:
        self._condition = condition

    def close(self) -> None:
        self._condition = Condition.STOPPED


class StatusLed:
    """An LED on a GPIO pin, blinking the pattern of the current condition.

    ``pin_factory`` is a gpiozero pin factory (tests pass ``MockFactory()``); None uses
    gpiozero's default (lgpio on a Raspberry Pi, or what ``GPIOZERO_PIN_FACTORY`` names).
    The blinking runs on gpiozero's own background thread, so a stalled agent thread
    does not freeze the pattern.
    """

    def __init__(self, pin: int | str, *, active_high: bool = True, pin_factory: object = None):
        try:
            from gpiozero import LED
            from gpiozero.exc import GPIOZeroError
        except ImportError as error:  # pragma: no cover - gpiozero is in the dev and pi extras
            raise StatusError(
                "status.led is configured but gpiozero is not installed "
                "(pip install 'edge-agent[pi]')"
            ) from error
        try:
            self._led = LED(pin, active_high=active_high, pin_factory=pin_factory)
        except (GPIOZeroError, ValueError, OSError) as error:
            raise StatusError(
                f"status LED on pin {pin!r}: {type(error).__name__}: {error}"
            ) from None
        self._pin = pin
        self._condition: Condition | None = None

    @property
    def condition(self) -> Condition | None:
        return self._condition

    @property
    def description(self) -> str:
        return f"pin {self._pin}"

    @property
    def unavailable(self) -> str | None:
        return None

    def show(self, condition: Condition) -> None:
        if condition is self._condition:
            return  # restarting a blink would stretch or cut its rhythm
        self._condition = condition
        pattern = PATTERNS[condition]
        if pattern.on_s <= 0.0:
            self._led.off()
        elif pattern.off_s <= 0.0:
            self._led.on()
        else:
            self._led.blink(on_time=pattern.on_s, off_time=pattern.off_s, background=True)

    def close(self) -> None:
        """Turn the LED off and release the pin."""
        self._condition = Condition.STOPPED
        self._led.off()
        self._led.close()


LED_RETRY_FIRST_S = 1.0  # the first retry of a pin that could not be opened
LED_RETRY_MAX_S = 60.0  # the backoff's cap: a self-test holds the pin for about a minute


class RetryingLed:
    """A configured LED whose pin could not be opened at start (a technician's
    ``edge-agent selftest`` holding it, a pin library not ready yet): the pin is tried again
    when the condition is shown (the agent's housekeeping, every second), after a delay
    that doubles from ``LED_RETRY_FIRST_S`` to ``LED_RETRY_MAX_S``. Until it opens it
    remembers the condition, as ``NoIndicator`` does; once open it shows it."""

    def __init__(
        self,
        config: StatusLedConfig,
        problem: str,
        *,
        pin_factory: object = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._pin_factory = pin_factory
        self._clock = clock
        self._led: StatusLed | None = None
        self._problem = problem
        self._condition: Condition | None = None
        self._delay_s = LED_RETRY_FIRST_S
        self._next_try_s = clock() + self._delay_s
        self.attempts = 1  # opening attempts so far, the first at start included
        self._closed = False  # closed: never opens the pin again (a late housekeeping pass)

    @property
    def condition(self) -> Condition | None:
        return self._condition

    @property
    def description(self) -> str:
        return self._led.description if self._led is not None else f"error: {self._problem}"

    @property
    def unavailable(self) -> str | None:
        return None if self._led is not None else self._problem

    def show(self, condition: Condition) -> None:
        self._condition = condition
        if self._led is None and not self._closed:
            self._retry()
        if self._led is not None:
            self._led.show(condition)

    def _retry(self) -> None:
        now_s = self._clock()
        if now_s < self._next_try_s:
            return
        self.attempts += 1
        try:
            led = StatusLed(
                self._config.pin,
                active_high=self._config.active_high,
                pin_factory=self._pin_factory,
            )
        except StatusError as error:
            self._problem = str(error)  # said once at start: the status reply has the latest
            self._delay_s = min(self._delay_s * 2.0, LED_RETRY_MAX_S)
            self._next_try_s = now_s + self._delay_s
            return
        self._led = led
        log.info(
            "status LED on pin %s works now (attempt %d; it was: %s)",
            self._config.pin,
            self.attempts,
            self._problem,
        )

    def close(self) -> None:
        self._closed = True
        self._condition = Condition.STOPPED
        if self._led is not None:
            self._led.close()


def open_indicator(
    config: StatusLedConfig | None, *, pin_factory: object = None
) -> StatusIndicator:
    """The configured indicator; a pin that cannot be used is logged and tried again
    (``RetryingLed``): a broken LED must not stop a camera from reporting, and a pin
    another program held at start (a self-test) must not leave the agent dark for good."""
    if config is None:
        return NoIndicator()
    try:
        return StatusLed(config.pin, active_high=config.active_high, pin_factory=pin_factory)
    except StatusError as error:
        log.error("%s; running without a status LED until the pin opens (retried)", error)
        return RetryingLed(config, str(error), pin_factory=pin_factory)
