"""Fault drills on the real native stack: a killed app, a restarted Prometheus, a Slack outage,
an Alertmanager that was down while an alert fired. Monitoring must not lie through them."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings
from modelmon.simulate.receiver import SlackReceiver, read_notifications
from modelmon.targets.layout import APP, PROMETHEUS
from modelmon.targets.native import NativeStack

from .conftest import REPO, free_port, wait_until
from .load import NORMAL, SUCCESS

pytestmark = pytest.mark.skipif(
    not shutil.which("prometheus") or not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")),
    reason="Prometheus and Alertmanager are not installed (make test installs them)",
)
MODEL = REPO / "models" / "stores"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    settings = load_settings("demo").replace(
        **{f"{n}_port": free_port() for n in ("app", "prometheus", "alertmanager", "receiver")})
    with NativeStack(MODEL, ReferenceProfile.load(profile_path(MODEL)), settings,
                     tmp_path_factory.mktemp("faults")) as running_stack:
        yield running_stack


class Sender(threading.Thread):
    """Sends one success in `every` (else normal) at ~rate/s until stopped; counts answers."""

    def __init__(self, url: str, every: int = 3, rate: float = 30.0, bad_share: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url, self.every, self.rate, self.bad_share = url, every, rate, bad_share
        self.ok = self.failed = 0
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=2) as client:
            i = 0
            while not self._halt.is_set():
                if self.bad_share and (i % round(1 / self.bad_share)) == 0:
                    body = {"items_count": "lots"}
                else:
                    body = SUCCESS if self.every and i % self.every == 0 else NORMAL
                try:
                    self.ok += client.post("/predict", json=body).status_code == 200
                except httpx.HTTPError:
                    self.failed += 1
                i += 1
                self._halt.wait(1 / self.rate)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def query(stack: NativeStack, expr: str) -> list[dict]:
    return httpx.get(f"{stack.url(PROMETHEUS)}/api/v1/query", params={"query": expr}).json()["data"]["result"]


def firing(stack: NativeStack, name: str) -> bool:
    alerts = httpx.get(f"{stack.url(PROMETHEUS)}/api/v1/alerts").json()["data"]["alerts"]
    return any(a["labels"]["alertname"] == name and a["state"] == "firing" for a in alerts)


def notified(stack: NativeStack, name: str, after: float) -> bool:
    return any(name in n["title"] and n["title"].startswith("[FIRING") and n["received_at"] > after
               for n in read_notifications(stack.notifications_file))


# Forty seconds of a restarting app: in `make test-slow`, to keep make test within its quarter hour.
@pytest.mark.slow
def test_killed_app_is_restarted_and_the_windowed_rate_stays_true(stack):
    sender = Sender(stack.url(APP), every=3)
    sender.start()
    time.sleep(20)
    stack.kill("app")  # kill -9 mid-load: its counters are gone with it
    time.sleep(1)
    stack.start_again("app")
    time.sleep(12)  # enough new samples, while the reset is still inside the 30 s window
    # The window read below holds the counter reset (else this would not test its handling).
    [resets] = query(stack, 'sum(resets(modelmon_predictions_total{model="stores"}[30s]))')
    [rate] = query(stack, 'model:modelmon_positive_class:ratio_rate30s{model="stores"}')
    sender.stop()
    assert sender.failed > 0, "the kill should have failed some requests"
    assert float(resets["value"][1]) >= 1, resets
    # rate() sees the counter reset and does not count it as a drop: the true rate is 1/3.
    assert abs(float(rate["value"][1]) - 1 / 3) < 0.02, rate


def test_restarted_prometheus_keeps_its_history(stack):
    # Its own traffic: the test before it in this module runs only in make test-slow.
    sender = Sender(stack.url(APP), every=3)
    sender.start()
    start = time.time()
    time.sleep(25)
    sender.stop()
    params = {"query": 'sum(modelmon_predictions_total{model="stores"})', "start": start,
              "end": time.time() - 2, "step": 1}

    def history():
        return httpx.get(f"{stack.url(PROMETHEUS)}/api/v1/query_range", params=params).json()["data"]["result"]

    earlier = history()
    assert earlier and len(earlier[0]["values"]) >= 15, earlier
    stack.kill("prometheus", sig=15)  # a clean shutdown, as an upgrade would do
    stack.start_again("prometheus")
    wait_until(lambda: query(stack, 'up{job="modelmon"}'), what="scraping again")
    assert history() == earlier, "samples from before the restart changed or are gone"


def test_slack_outage_is_retried_until_the_message_lands(stack):
    stack.kill("receiver")
    outage = SlackReceiver("127.0.0.1", stack.settings.receiver_port, stack.notifications_file, echo=False)
    outage.failing_until = float("inf")  # Slack answers 500 ...
    outage.start()
    try:
        start = time.time()
        sender = Sender(stack.url(APP), every=0)  # no success at all: the workshop's alert fires
        sender.start()
        wait_until(lambda: firing(stack, "ModelLowPositiveRate"), timeout=90, what="ModelLowPositiveRate")
        sender.stop()
        wait_until(lambda: outage.refused >= 2, timeout=60, what="Alertmanager to hit the outage twice")
        assert not notified(stack, "ModelLowPositiveRate", start)
        outage.failing_until = 0.0  # ... until it recovers
        wait_until(lambda: notified(stack, "ModelLowPositiveRate", start), timeout=60, what="delivery after the outage")
    finally:
        outage.stop()
        stack.start_again("receiver")


def test_alert_fired_while_alertmanager_was_down_still_arrives(stack):
    stack.kill("alertmanager", sig=15)
    start = time.time()
    sender = Sender(stack.url(APP), every=3, bad_share=0.3)
    sender.start()
    try:
        wait_until(lambda: firing(stack, "ModelInvalidInputRate"), timeout=90, what="ModelInvalidInputRate")
        time.sleep(3)
        assert not notified(stack, "ModelInvalidInputRate", start)
        stack.start_again("alertmanager")
        wait_until(lambda: notified(stack, "ModelInvalidInputRate", start), timeout=60,
                   what="the notification after Alertmanager came back")
    finally:
        sender.stop()
