import pytest

from modelmon.settings import SettingsError, load_settings, seconds


def test_profiles_differ_where_the_demo_needs_speed():
    production, demo = load_settings("production"), load_settings("demo")
    assert (production.scrape_interval, production.rate_window, production.drift_window, production.alert_for) == (
        "5s", "5m", "10m", "2m")
    assert (demo.scrape_interval, demo.rate_window, demo.drift_window, demo.alert_for) == ("1s", "30s", "1m", "10s")
    assert production.positive_rate_floor == demo.positive_rate_floor == 0.20
    assert production.psi_threshold == production.ks_threshold == 0.2


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
    ({"MODELMON_APP_PORT": "eighty"}, "app_port must be a int"),
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
