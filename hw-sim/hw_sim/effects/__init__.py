"""Changes to the picture over time, for the scene analyzers' scenarios.

Every effect is a pure function of (image, t_s) (``hw_sim.scenes.Effect``): the same
inputs give the same bytes, whatever order frames are rendered in. Geometry is given in
fractions of the frame, so an effect looks the same at any resolution; per-size work
(noise fields, sprites) is cached.

Stages: "scene" effects change the world before the sensor (a puddle, dusk, bags, a
hand in front of the lens, a knocked or defocused camera: the sensor's noise still
applies, as it would); "lens" effects replace what the sensor delivered (a frozen feed).

Each effect that stands for ground truth can say how much of a region it covers
(``coverage``), so scenarios derive their expected states from the same geometry that
draws the picture.

The effects live by what they stand for: ``lighting`` (daylight, dusk, clouds, headlights,
night), ``water`` (puddle, rain), ``litter`` (rubbish bags), ``camera`` (lens cover,
knock, sway, defocus, frozen feed); ``common`` holds what they share.
"""

from hw_sim.effects.camera import Defocus, FrozenFeed, Knock, LensCover, Sway
from hw_sim.effects.common import (
    FloatImage,
    Keyframes,
    Polygon,
    actor_rect,
    interpolate,
    polygon_mask,
    seconds_to_keyframes,
)
from hw_sim.effects.lighting import CloudShadows, Daylight, Headlights, NightLighting, car_actors
from hw_sim.effects.litter import Bag, GarbageBags
from hw_sim.effects.water import Puddle, Rain

__all__ = [
    "Bag",
    "CloudShadows",
    "Daylight",
    "Defocus",
    "FloatImage",
    "FrozenFeed",
    "GarbageBags",
    "Headlights",
    "Keyframes",
    "Knock",
    "LensCover",
    "NightLighting",
    "Polygon",
    "Puddle",
    "Rain",
    "Sway",
    "actor_rect",
    "car_actors",
    "interpolate",
    "polygon_mask",
    "seconds_to_keyframes",
]
