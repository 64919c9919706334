import pytest

from modelmon.settings import Settings, SettingsError, load_settings, seconds


def test_profiles_differ_where_the_demo_needs_speed():
    production, demo = load_settings("production"), load_settings("demo")
    assert (production.scrape_interval, production.rate_window, production.drift_window, production.short_window,
            production.alert_for) == ("5s", "5m", "10m", "1m", "1m")
    assert (demo.scrape_interval, demo.rate_window, demo.drift_window, demo.short_window, demo.alert_for) == (
        "1s", "30s", "1m", "10s", "10s")
    assert production.positive_rate_floor == demo.positive_rate_floor == 0.20
    assert production.psi_threshold == production.ks_threshold == 0.2


def test_a_short_window_as_long_as_the_rate_window_is_refused():
    with pytest.raises(SettingsError, match=r"short_window \(5m\) must be shorter than rate_window"):
        load_settings("production", env={"MODELMON_SHORT_WINDOW": "5m"})


def test_only_the_demo_has_a_grafana_password():
    assert load_settings("production").grafana_admin_password == ""
    demo = load_settings("demo")
    assert (demo.grafana_admin_user, demo.grafana_admin_password) == ("mlreply", "mlreply")
    assert demo.demo_credentials


def test_file_then_environment_override(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("psi_threshold: 0.3\napp_port: 8100\n")
    settings = load_settings("demo", file, env={"MODELMON_APP_PORT": "8200", "MODELMON_RATE_WINDOW": "45s"})
    assert settings.psi_threshold == 0.3
    assert settings.app_port == 8200
    assert settings.rate_window == "45s"
    assert settings.scrape_interval == "1s"  # the profile's default stays


@pytest.mark.parametrize("env, message", [
    ({"MODELMON_APP_PORT": "eighty"}, "app_port must be an int"),
    ({"MODELMON_RATE_WINDOW": "5 minutes"}, "not a duration"),
])
def test_bad_values_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings("production", env=env)


def test_unknown_setting_and_profile(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("psi: 0.3\n")
    with pytest.raises(SettingsError, match="Unknown setting 'psi'"):
        load_settings("production", file, env={})
    with pytest.raises(SettingsError, match="Unknown settings profile"):
        load_settings("staging")


def test_seconds():
    assert [seconds(d) for d in ("500ms", "30s", "5m", "1h")] == [0.5, 30, 300, 3600]


@pytest.mark.parametrize("flags, field", [
    ({"accuracy_floor": 1.5}, "accuracy_floor"),
    ({"positive_rate_floor": -0.1}, "positive_rate_floor"),
    ({"rate_window": "-5m"}, "rate_window"),
    ({"drift_window": "0"}, "drift_window"),
    ({"app_port": 70000}, "app_port"),
    ({"monitoring": "perhaps"}, "monitoring"),
])
def test_invalid_settings_are_refused_naming_the_field(flags, field):
    with pytest.raises(SettingsError, match=f"Setting {field}"):
        load_settings("production", env={}, flags=flags)


def test_every_layer_in_order_and_flags_win(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("profile: demo\nmax_batch_rows: 10\nlog_retention: 7d\n")
    settings = load_settings(None, file, env={"MODELMON_MAX_BATCH_ROWS": "20", "MODELMON_MONITORING": "false"},
                             flags={"max_batch_rows": 30, "log_level": None})
    assert settings.profile == "demo" and settings.rate_window == "30s"  # the file chose the profile
    assert settings.max_batch_rows == 30 and settings.monitoring is False and settings.log_retention == "7d"
    assert settings.log_level == "warning"  # a flag not given leaves the default
    with pytest.raises(SettingsError, match="for the 'demo' profile"):
        load_settings("production", file, env={})


def test_rendered_settings_read_back_exactly(tmp_path):
    from modelmon.settings import read_settings_file, settings_yaml

    settings = load_settings("demo", env={}, flags={"psi_threshold": 0.35, "app_port": 8123})
    path = tmp_path / "settings.yaml"
    path.write_text(settings_yaml(settings))
    assert "grafana_admin_password" not in path.read_text()  # a secret is not written
    assert read_settings_file(path) == settings


def test_readme_settings_table_is_generated():
    from pathlib import Path

    from modelmon.settings import settings_reference

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert settings_reference() in readme, "README's settings table is stale: run `make readme`"


def test_each_model_logs_to_a_file_of_its_own_by_default():
    settings = Settings()
    assert settings.prediction_log_of("stores") == "runs/stores/predictions.sqlite"
    assert settings.prediction_log_of("../x y") == "runs/_x_y/predictions.sqlite"  # one folder, whatever the name
    shared = Settings(prediction_log="postgresql+psycopg://db/logs")
    assert shared.prediction_log_of("stores") == "postgresql+psycopg://db/logs"  # one store, keyed by model


def test_cli_flags_are_the_settings_own() -> None:
    """Every option that overrides a setting takes its help, type and choices from the field,
    and leaves the default to the settings (None: the profile, file and MODELMON_* decide)."""
    import argparse

    from modelmon.cli.commands import FLEET_FLAGS, SERVE_FLAGS
    from modelmon.cli.parser import build_parser
    from modelmon.settings import setting_doc

    def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        found: dict[str, argparse.ArgumentParser] = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[name] = sub
                    found.update({f"{name} {k}": v for k, v in subparsers(sub).items()})
        return found

    commands = subparsers(build_parser())
    fields = set(Settings.__dataclass_fields__)
    checked = {}
    for command, sub in commands.items():
        for action in sub._actions:
            if action.dest in fields and action.dest != "profile":
                doc = setting_doc(action.dest)
                assert action.default is None, (command, action.dest)
                assert doc.doc.replace("%", "%%") in (action.help or ""), (command, action.dest)
                assert f"setting {action.dest};" in (action.help or ""), (command, action.dest)
                assert action.choices == doc.choices or action.const is not None, (command, action.dest)
                checked.setdefault(command, set()).add(action.dest)
    assert checked["serve"] == set(SERVE_FLAGS)
    assert set(FLEET_FLAGS) <= checked["stack render"] and set(FLEET_FLAGS) <= checked["up"]
    assert {"host", "app_port", "prediction_log"} <= checked["collect"]
    args = build_parser().parse_args(["serve", "--port", "8123", "--no-monitoring"])
    assert (args.app_port, args.monitoring, args.workers) == (8123, False, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stack", "render", "--rule-evaluation", "everywhere"])
