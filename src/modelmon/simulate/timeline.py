"""Watch alerts and notifications while a scenario runs, and relate them to its phases.

This answers the questions a rehearsal is for: how long after the change did the alert
fire, when did the notification land, and did anything fire during normal traffic?
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from modelmon.simulate.receiver import read_notifications
from modelmon.simulate.simulator import PhaseResult
from modelmon.targets.promapi import PrometheusAPI, PrometheusAPIError

_IGNORED_LABELS = {"alertname", "severity", "job", "instance"}


@dataclass(frozen=True)
class Event:
    at: float  # wall clock
    kind: str  # pending | firing | resolved | notified
    alert: str  # alertname
    detail: str  # labels that tell alerts of one name apart, or the notification title
    value: str = ""


def alert_key(labels: dict[str, str]) -> tuple[str, str]:
    detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _IGNORED_LABELS)
    return labels["alertname"], detail


class AlertWatcher:
    """Polls Prometheus's /api/v1/alerts and the receiver's log in a background thread."""

    def __init__(self, prometheus: str, notifications: Path, interval: float = 0.5) -> None:
        self.prometheus = prometheus
        self._api = PrometheusAPI(prometheus, timeout=5)
        self.notifications = notifications
        self.interval = interval
        self.events: list[Event] = []
        self._states: dict[tuple[str, str], str] = {}
        self._seen_notes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alert-watcher", daemon=True)

    def start(self) -> AlertWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except PrometheusAPIError:
                pass  # not up yet, or restarting: the next poll sees it
            self._stop.wait(self.interval)

    def poll(self) -> None:
        now = time.time()
        alerts = self._api.alerts()
        current: dict[tuple[str, str], tuple[str, str]] = {}
        for alert in alerts:
            current[alert_key(alert["labels"])] = (alert["state"], alert.get("value", ""))
        for key, (state, value) in current.items():
            if self._states.get(key) != state:
                self.events.append(Event(now, state, key[0], key[1], _short(value)))
                self._states[key] = state
        for key in [k for k in self._states if k not in current]:
            if self._states[key] == "firing":
                self.events.append(Event(now, "resolved", key[0], key[1]))
            del self._states[key]
        notes = read_notifications(self.notifications)
        for note in notes[self._seen_notes:]:
            self.events.append(Event(note["received_at"], "notified", note["alertname"],
                                     f"{note['channel']}: {note['title']}"))
        self._seen_notes = len(notes)

    def pending(self) -> set[str]:
        return {key[0] for key, state in self._states.items() if state == "pending"}


def _short(value: str) -> str:
    try:
        return f"{float(value):.3g}"
    except ValueError:
        return value


def phase_at(phases: list[PhaseResult], at: float) -> PhaseResult | None:
    current = None
    for phase in phases:
        if phase.started_at and phase.started_at <= at:
            current = phase
    return current


def render_timeline(phases: list[PhaseResult], events: list[Event]) -> str:
    """Phase changes and alert events, each timed from the start and from its phase's start."""
    if not phases:
        return ""
    origin = phases[0].started_at
    lines = [f"{'time':>8}  {'since phase':>11}  {'phase':<16} event"]
    items: list[tuple[float, str]] = [(p.started_at, f"-- phase '{p.name}' starts --") for p in phases]
    for e in events:
        if e.kind == "pending":
            continue
        if e.kind == "notified":
            text = f"notified {e.detail}"
        else:
            value = f" (value {e.value})" if e.value and e.kind == "firing" else ""
            text = f"{e.alert} {e.kind}{f' [{e.detail}]' if e.detail else ''}{value}"
        items.append((e.at, text))
    for at, text in sorted(items, key=lambda item: item[0]):
        phase = phase_at(phases, at)
        since = at - phase.started_at if phase else 0.0
        name = phase.name if phase else ""
        lines.append(f"{at - origin:>+7.1f}s  {since:>+10.1f}s  {name:<16} {text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Detection:
    alert: str
    detail: str
    phase: str
    to_firing: float  # seconds from the start of the phase it fired in
    to_notified: float | None


def detections(phases: list[PhaseResult], events: list[Event], normal: str = "normal",
               slack: float = 1.0) -> tuple[list[Detection], list[Event]]:
    """For each alert that fired outside normal phases: delay from its phase's start to the
    first firing and to the first notification about it. Also every firing in a normal phase.

    Firing is seen by polling, so a notification may be logged up to a poll before it;
    `slack` seconds of that are allowed when pairing them.
    """
    ordered = sorted(events, key=lambda e: e.at)
    found: dict[tuple[str, str], tuple[Detection, float]] = {}
    false_alarms = []
    for e in ordered:
        phase = phase_at(phases, e.at)
        if phase is None or e.kind != "firing":
            continue
        if phase.name == normal:
            false_alarms.append(e)
        elif (e.alert, e.detail) not in found:
            found[(e.alert, e.detail)] = (Detection(e.alert, e.detail, phase.name, e.at - phase.started_at, None),
                                          phase.started_at)
    result = []
    for (alert, _), (d, phase_start) in found.items():
        fired_at = phase_start + d.to_firing
        note = next((e for e in ordered if e.kind == "notified" and e.alert == alert and e.at >= fired_at - slack), None)
        result.append(Detection(d.alert, d.detail, d.phase, d.to_firing, note.at - phase_start if note else None))
    return result, false_alarms
