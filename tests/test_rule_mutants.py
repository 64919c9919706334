"""Mutation testing of the generated rules: a wrong rule must fail the promtool cases.

The catalogue (see tests.mutants) is printed with the verdict on each mutant. A mutant
that survives and is not in KNOWN_SURVIVORS fails the test; so does a known survivor that is
now killed (the list must stay true; it is empty: every mutant that can be told apart from
its rule is killed). About three minutes per model and profile: it runs with the load tests in
`make test-slow`, which keeps `make test` near its ten minutes.
"""

from __future__ import annotations

import pytest

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings
from modelmon.targets.stack import render_stack
from tests.mutants import catalogue, report, run

pytestmark = pytest.mark.slow

# Mutants the cases do not kill yet, each with why. Not equivalents: holes, named.
KNOWN_SURVIVORS: dict[str, dict[str, str]] = {}


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("which, profile_name", [("stores", "production"), ("stores", "demo"),
                                                 ("regressor", "production"), ("categorical", "production")])
def test_every_rule_mutant_is_killed(which, profile_name, tmp_path, request, capsys):
    """The stores classifier under both settings profiles; a regressor (prediction drift on
    values, MAE) and a classifier with a categorical and a nullable input (category PSI,
    missing share) under production's: their demo profiles differ only in windows, and three
    more minutes each would not fit CI's hour."""
    profile = ReferenceProfile.load(profile_path(request.getfixturevalue(f"{which}_model").path))
    settings = load_settings(profile_name, env={})
    layout = render_stack(profile, settings, tmp_path / "stack", topology="native").layout
    outcomes = run(layout, catalogue(layout, settings), tmp_path / "work")
    with capsys.disabled():
        print("\n" + report(f"{which}, {profile_name}", outcomes))
    known = KNOWN_SURVIVORS.get(f"{which}-{profile_name}", {})
    survivors = {o.mutant.name for o in outcomes if not o.killed and not o.equivalent}
    assert not survivors - set(known), "wrong rules that pass every promtool case:\n" + "\n".join(
        sorted(survivors - set(known)))
    assert not set(known) - survivors, "now killed, drop from KNOWN_SURVIVORS:\n" + "\n".join(
        sorted(set(known) - survivors))
