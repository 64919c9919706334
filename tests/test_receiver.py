import httpx

from modelmon.simulate.receiver import SlackReceiver, read_notifications, slack_shape_errors


def test_slack_shape():
    good = {"channel": "#model-alerts", "attachments": [{"title": "[FIRING:1] X", "text": "details"}]}
    assert slack_shape_errors(good) == []
    assert slack_shape_errors({"attachments": good["attachments"]}) == ["no channel"]
    assert slack_shape_errors({"channel": "#x", "attachments": []}) == ["no attachments"]
    assert slack_shape_errors({"channel": "#x", "attachments": [{"title": "t"}]}) == ["attachment 0 has no text"]
    assert slack_shape_errors([1]) == ["the payload is not a JSON object"]


def test_receiver_logs_good_payloads_and_refuses_others(tmp_path):
    from tests.integration.conftest import free_port

    port = free_port()
    log = tmp_path / "n.jsonl"
    receiver = SlackReceiver("127.0.0.1", port, log, echo=False).start()
    try:
        url = f"http://127.0.0.1:{port}/slack"
        ok = httpx.post(url, json={"channel": "#c", "attachments": [{"title": "T", "text": "body"}]})
        assert (ok.status_code, ok.text) == (200, "ok")
        bad = httpx.post(url, json={"text": "no channel"})
        assert bad.status_code == 400 and "no channel" in bad.text
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    finally:
        receiver.stop()
    [entry] = read_notifications(log)
    assert (entry["channel"], entry["title"], entry["text"]) == ("#c", "T", "body")
