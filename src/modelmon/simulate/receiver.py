"""A local stand-in for Slack's incoming webhook, for the demo and the tests.

It accepts what Alertmanager's Slack integration sends, checks the payload has Slack's
shape (channel, attachments with title and text), prints one line per notification and
appends it to a JSON-lines file, so a person and a test can both see what reached "Slack".
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modelmon.contract.routes import SLACK_PATH
from modelmon.rules.alertmanager import GROUP_BY, STATUS_FIELD


def slack_shape_errors(payload: Any) -> list[str]:
    """What is missing for this to be a Slack message Alertmanager would send; empty if fine."""
    if not isinstance(payload, dict):
        return ["the payload is not a JSON object"]
    errors = []
    if not isinstance(payload.get("channel"), str) or not payload["channel"]:
        errors.append("no channel")
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        errors.append("no attachments")
    else:
        for i, attachment in enumerate(attachments):
            for key in ("title", "text"):
                if not isinstance(attachment, dict) or not str(attachment.get(key, "")).strip():
                    errors.append(f"attachment {i} has no {key}")
    return errors


class SlackReceiver:
    """HTTP server on `host:port`; every accepted notification goes to `log_file`."""

    def __init__(self, host: str, port: int, log_file: Path, echo: bool = True) -> None:
        self.log_file = log_file
        self.echo = echo
        self.failing_until = 0.0  # answer 500 until then: a Slack outage, for fault drills
        self.refused = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(HTTPStatus.OK if self.path == "/health" else HTTPStatus.NOT_FOUND, "ok")

            def do_POST(self) -> None:
                if self.path != SLACK_PATH:
                    self._answer(HTTPStatus.NOT_FOUND, "not found")
                    return
                if time.time() < receiver.failing_until:
                    receiver.refused += 1
                    self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, "outage")
                    return
                length = int(self.headers.get("content-length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self._answer(HTTPStatus.BAD_REQUEST, "invalid_payload")
                    return
                errors = slack_shape_errors(payload)
                if errors:
                    self._answer(HTTPStatus.BAD_REQUEST, "invalid_payload: " + "; ".join(errors))
                    return
                receiver.record(payload)
                self._answer(HTTPStatus.OK, "ok")

            def _answer(self, status: HTTPStatus, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    def record(self, payload: dict[str, Any]) -> None:
        first = payload["attachments"][0]
        fields = {f.get("title"): f.get("value") for f in first.get("fields") or [] if isinstance(f, dict)}
        entry = {
            "received_at": time.time(),
            "channel": payload["channel"],
            "alertname": fields.get("alertname", ""),
            "status": fields.get(STATUS_FIELD, ""),
            "labels": {k: fields[k] for k in GROUP_BY if k in fields and k != "alertname"},
            "title": first["title"],
            "text": first["text"],
            "payload": payload,
        }
        with self._lock:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a") as out:
                out.write(json.dumps(entry) + "\n")
        if self.echo:
            print(f"[slack {payload['channel']}] {first['title']}", flush=True)

    def start(self) -> SlackReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-receiver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def read_notifications(log_file: Path) -> list[dict[str, Any]]:
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
