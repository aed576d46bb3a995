"""Score the object events the agent emitted on a real clip against its by-eye truth.

Pure: no pipeline, no files. The truth has no positions (counting boxes by eye on every
frame is not practical), so events are matched to truth objects **by time overlap** only:

- An event covers the frames from its first to its last sighting. It may match a truth
  object of the same label family (vehicles are one family, as the tracker treats them)
  when the two overlap, the truth's span widened by ``slack_s`` at both ends (the detector
  may see a head at the door a little before the counter did, or a foot a little after).
- Matching is one to one, largest overlap first: each truth object gets at most one
  *matched* event. A truth object with none is a **miss**.
- An event left over that overlaps some truth object is a **fragment** of the one it
  overlaps most: one object became several events. An event that overlaps none is a
  **false event** (a label of another family never matches, so a parked car reported as
  "cell phone" is a false "cell phone" and a missed car).
- An **id switch** is an event that runs on, beyond its own truth object's widened span,
  into the frames of another truth object of its family: one event for two objects.
- **Wrong label**: a matched event whose label differs from the truth's within the family
  (a car reported as "truck").
- **Cover**: the share of the truth objects' frames that an event given to them (matched
  or fragment) spans; an object found late, or lost for a while, covers less.
- **Time to first event**: for each matched object, from its first frame to the publication
  of the earliest of its events (``new``), in seconds: what a person waits.
- **Per-frame counts** (where the truth gives them): in every frame, the events whose span
  holds that frame, per label and per family, minus the truth's count.

What time overlap cannot see: two objects in view at once can trade events without an id
switch being counted, and a short spurious event while an object is in view counts as a
fragment of it rather than as false.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hw_sim.footage.truth import ClipTruth, TruthObject, label_family

DEFAULT_SLACK_S = 1.0


@dataclass(frozen=True)
class ObservedEvent:
    """One object event as the agent published it, in frames of the clip."""

    event_id: str
    label: str  # the label of its last message (what `end` said)
    first_frame: int  # first sighting (the event's start)
    last_frame: int  # last sighting (the event's end)
    published_frame: int  # when `new` went out

    @property
    def family(self) -> str:
        return label_family(self.label)


@dataclass(frozen=True)
class LabelScore:
    """One row: a label family on one clip."""

    family: str
    expected: int
    observed: int
    matched: int
    misses: int
    fragments: int
    id_switches: int
    false_events: int
    wrong_labels: int
    first_event_s: tuple[float, ...]  # per matched truth object
    seen_as: tuple[tuple[str, int], ...]  # labels of the events given to truth objects
    missed: tuple[str, ...]  # ids of the truth objects no event matched
    covered_frames: int = 0  # truth frames spanned by an event given to that object
    truth_frames: int = 0  # all the truth objects' frames

    @property
    def cover(self) -> float | None:
        return self.covered_frames / self.truth_frames if self.truth_frames else None


@dataclass(frozen=True)
class CountScore:
    """Per-frame count error for one label (or a whole family, ``"vehicle (all)"``)."""

    label: str
    errors: tuple[int, ...]  # observed minus truth, frame by frame

    @property
    def exact_frames(self) -> int:
        return sum(1 for e in self.errors if e == 0)

    @property
    def mean_abs_error(self) -> float:
        return sum(abs(e) for e in self.errors) / len(self.errors) if self.errors else 0.0

    @property
    def max_abs_error(self) -> int:
        return max((abs(e) for e in self.errors), default=0)


@dataclass(frozen=True)
class ClipScore:
    clip: str
    rows: tuple[LabelScore, ...]
    counts: tuple[CountScore, ...]

    def row(self, family: str) -> LabelScore:
        for row in self.rows:
            if row.family == family:
                return row
        raise KeyError(family)

    def count(self, label: str) -> CountScore:
        for count in self.counts:
            if count.label == label:
                return count
        raise KeyError(label)


def _overlap(event: ObservedEvent, first: int, last: int) -> int:
    return max(0, min(event.last_frame, last) - max(event.first_frame, first) + 1)


def score_clip(
    truth: ClipTruth, events: Sequence[ObservedEvent], *, slack_s: float = DEFAULT_SLACK_S
) -> ClipScore:
    """Score one clip's events (see the module docstring for the rules)."""
    slack = round(slack_s * truth.fps)
    families = sorted({o.family for o in truth.objects} | {e.family for e in events})
    rows = tuple(
        _score_family(
            family,
            [o for o in truth.objects if o.family == family],
            [e for e in events if e.family == family],
            slack=slack,
            fps=truth.fps,
        )
        for family in families
    )
    return ClipScore(truth.clip, rows, _count_errors(truth, events))


def _score_family(
    family: str,
    objects: list[TruthObject],
    events: list[ObservedEvent],
    *,
    slack: int,
    fps: float,
) -> LabelScore:
    def widened(obj: TruthObject) -> tuple[int, int]:
        return obj.first_frame - slack, obj.last_frame + slack

    pairs = [(i, j) for i in range(len(objects)) for j in range(len(events))]
    overlaps = {(i, j): _overlap(events[j], *widened(objects[i])) for i, j in pairs}
    # Largest overlap with the object's own span first, then with its widened span (the
    # slack decides who may match, not who matches best), then the same label; then
    # earlier truth, earlier event.
    weight = {
        (i, j): (
            _overlap(events[j], objects[i].first_frame, objects[i].last_frame),
            overlaps[i, j],
            events[j].label == objects[i].label,
        )
        for i, j in pairs
    }
    owner: dict[int, int] = {}  # event -> truth object
    matched_objects: set[int] = set()
    for i, j in sorted(
        pairs, key=lambda pair: (-weight[pair][0], -weight[pair][1], not weight[pair][2], pair)
    ):
        if overlaps[i, j] > 0 and i not in matched_objects and j not in owner:
            owner[j] = i
            matched_objects.add(i)
    matched_events = set(owner)
    false_events = 0
    for j in range(len(events)):
        if j in owner:
            continue
        best = max(range(len(objects)), key=lambda i: weight[i, j], default=None)
        if best is None or overlaps[best, j] == 0:
            false_events += 1
        else:
            owner[j] = best  # a fragment of ``best``
    id_switches = 0
    for j, i in owner.items():
        first, last = widened(objects[i])
        if any(
            _outside_overlap(events[j], other, first, last) > 0
            for k, other in enumerate(objects)
            if k != i
        ):
            id_switches += 1
    by_object: dict[int, list[ObservedEvent]] = {}
    for j, i in owner.items():
        by_object.setdefault(i, []).append(events[j])
    first_event_s = tuple(
        (min(e.published_frame for e in by_object[i]) - objects[i].first_frame) / fps
        for i in sorted(matched_objects)
    )
    covered = sum(
        len(
            {
                frame
                for e in by_object.get(i, [])
                for frame in range(e.first_frame, e.last_frame + 1)
                if obj.contains(frame)
            }
        )
        for i, obj in enumerate(objects)
    )
    wrong = sum(1 for j in matched_events if events[j].label != objects[owner[j]].label)
    seen_as = Counter(events[j].label for j in owner)
    return LabelScore(
        family=family,
        expected=len(objects),
        observed=len(events),
        matched=len(matched_objects),
        misses=len(objects) - len(matched_objects),
        fragments=len(owner) - len(matched_events),
        id_switches=id_switches,
        false_events=false_events,
        wrong_labels=wrong,
        first_event_s=first_event_s,
        seen_as=tuple(sorted(seen_as.items())),
        missed=tuple(o.id for i, o in enumerate(objects) if i not in matched_objects),
        covered_frames=covered,
        truth_frames=sum(o.last_frame - o.first_frame + 1 for o in objects),
    )


def _outside_overlap(event: ObservedEvent, other: TruthObject, first: int, last: int) -> int:
    """Frames of ``other`` the event covers outside its own object's widened span."""
    lo, hi = max(event.first_frame, other.first_frame), min(event.last_frame, other.last_frame)
    if hi < lo:
        return 0
    inside = max(0, min(hi, last) - max(lo, first) + 1)
    return hi - lo + 1 - inside


def _count_errors(truth: ClipTruth, events: Sequence[ObservedEvent]) -> tuple[CountScore, ...]:
    if not truth.frame_counts:
        return ()
    families = {label_family(label) for span in truth.frame_counts for label in span.counts}
    labels = sorted(
        {label for span in truth.frame_counts for label in span.counts}
        | {e.label for e in events if e.family in families}
    )
    per_label: dict[str, list[int]] = {label: [] for label in labels}
    per_family: dict[str, list[int]] = {family: [] for family in sorted(families)}
    for frame in range(truth.frames):
        expected = truth.counts_at(frame) or {}
        seen = Counter(e.label for e in events if e.first_frame <= frame <= e.last_frame)
        for label in labels:
            per_label[label].append(seen[label] - expected.get(label, 0))
        for family in per_family:
            per_family[family].append(
                _family_total(seen.items(), family) - _family_total(expected.items(), family)
            )
    rows = [CountScore(label, tuple(errors)) for label, errors in per_label.items()]
    rows += [CountScore(f"{family} (all)", tuple(e)) for family, e in per_family.items()]
    return tuple(rows)


def _family_total(counts: Iterable[tuple[str, int]], family: str) -> int:
    return sum(n for label, n in counts if label_family(label) == family)


# --- presentation --------------------------------------------------------------------------

_HEADER = (
    f"{'label':<11}{'expected':>9}{'observed':>9}{'matched':>8}{'misses':>7}{'fragments':>10}"
    f"{'id_sw':>6}{'false':>6}{'wrong':>6}{'cover':>6}  {'first event s':<15}seen as"
)


def _first_event_cell(values: tuple[float, ...]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    return f"{mean:.1f} (max {max(values):.1f})"


def format_clip(score: ClipScore, title: str) -> str:
    """One clip's table, titled, as plain text."""
    lines = [title, _HEADER]
    for r in score.rows:
        seen = ", ".join(f"{label}x{n}" for label, n in r.seen_as) or "-"
        if r.missed:
            seen += f"; missed {','.join(r.missed)}"
        lines.append(
            f"{r.family:<11}{r.expected:>9}{r.observed:>9}{r.matched:>8}{r.misses:>7}"
            f"{r.fragments:>10}{r.id_switches:>6}{r.false_events:>6}{r.wrong_labels:>6}"
            f"{'-' if r.cover is None else format(r.cover, '.0%'):>6}  "
            f"{_first_event_cell(r.first_event_s):<15}{seen}"
        )
    if score.counts:
        lines.append(f"  per-frame count ({len(score.counts[0].errors)} frames): observed - truth")
        for c in score.counts:
            shown = " ".join(f"{e:+d}" for e in c.errors)
            lines.append(
                f"  {c.label:<15} exact {c.exact_frames:>3}  mean |err| {c.mean_abs_error:.2f}  "
                f"max {c.max_abs_error}  [{shown}]"
            )
    return "\n".join(lines)
