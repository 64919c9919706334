import socket

from modelmon.settings import load_settings
from modelmon.workshop.demo import ports_that_are_free


def test_demo_moves_off_ports_that_are_taken(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        settings = ports_that_are_free(load_settings("demo").replace(prometheus_port=busy))
        assert settings.prometheus_port != busy
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", settings.prometheus_port))  # free indeed
    assert f"port {busy} is taken" in capsys.readouterr().out
