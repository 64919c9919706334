"""PromQL building blocks the recording rules and alerts share: PSI and KS over rank bins, the
Wilson bound, windows' branches, label quoting.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterable

from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.series import Names
from modelmon.settings import Settings
from modelmon.stats.drift import PSI_EPSILON


def rank_bins(cdf: str) -> str:
    """Bin shares from a CDF recorded per `le`: each bin labelled by its upper bound.

    `group_left` keeps the left side's `le`; a plain one-to-one `ignoring (le)` would drop it.
    """
    les = [bound_label(b) for b in QUANTILE_BUCKETS]
    parts = [f'{cdf}{{le="{les[0]}"}}']
    parts += [f'({cdf}{{le="{hi}"}} - ignoring (le) group_left {cdf}{{le="{lo}"}})' for lo, hi in itertools.pairwise(les)]
    return "\n  or ".join(parts)


def psi_expr(live: str, reference: str, by: str, on: str) -> str:
    eps = repr(PSI_EPSILON)
    return (
        f"sum by ({by}) (\n"
        f"  ({live} - on ({on}) {reference})\n"
        f"  * on ({on}) ln(({live} + {eps}) / on ({on}) ({reference} + {eps}))\n"
        f")"
    )


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def or_each(terms: Iterable[str]) -> str:
    return "\n  or ".join(terms)


def wilson_upper(share: str, count: str, z: float) -> str:
    """The upper Wilson score bound of `share` observed on `count` rows (modelmon.stats.evidence)."""
    z2 = z * z
    return (f"(\n  {share} + {z2 / 2!r} / {count}\n"
            f"  + {z!r} * sqrt({share} * (1 - {share}) / {count} + {z2 / 4!r} / {count} ^ 2)\n"
            f")\n/ (1 + {z2!r} / {count})")


def either_of(branches: Iterable[str]) -> str:
    """The long-window branch `or` the fast one, each in its own parentheses."""
    return "\nor\n".join(f"(\n{textwrap.indent(branch, '  ')}\n)" for branch in branches)


def percent(share: float) -> str:
    """99.99 % as `99.99%`, not rounded up to 100."""
    return f"{share * 100:.10g}%"


def windows_clause(s: Settings, drift: bool = False) -> str:
    return (f"Over the last {s.drift_window if drift else s.rate_window} (or, for an abrupt change, the last "
            f"{s.short_window})")


# The long-window branch weighs PSI and KS; the fast one PSI alone: a change abrupt and large
# enough to page within a short window moves whole bins (PSI), while a shift across
# neighbouring bins that only KS sees is the subtle kind the long window is for.
def window_branches(settings: Settings) -> tuple[tuple[Names, float, bool], tuple[Names, float, bool]]:
    return (Names.of(settings), 1.0, True), (Names.short_of(settings), settings.short_factor, False)


def ks_clause(profile: ReferenceProfile, s: Settings) -> str:
    if not profile.features:
        return ""
    which = "for a numeric input " if profile.categories else ""
    return f"; {which}the alert also fires when KS exceeds {s.ks_threshold}"
