"""`modelmon data explore`: a first look at a training CSV, as the workshop opened with.

One histogram per numeric column with its mean marked, a bar chart of the category shares of
every other column (the 30 most frequent, as the profile keeps them), and a Markdown summary
with each column's missing share. Works for any CSV; the share of each target value is added
when a target column is named or obvious. Given a model whose profile calibrated its
probabilities, a reliability diagram (before and after) and the reference quality too: how
far the estimated quality can be trusted starts here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelmon.model.reference import MAX_CATEGORIES, ReferenceProfile
from modelmon.report.plotting import pyplot
from modelmon.stats.calibration import Calibration


def column_plot(values: pd.Series, out: Path) -> Path:
    plt = pyplot()
    present = values.dropna()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if present.nunique() <= 10:
        counts = present.value_counts().sort_index()
        ax.bar([str(v) for v in counts.index], counts.to_numpy(), color="#4C72B0")
    else:
        ax.hist(present, bins=30, color="#4C72B0", edgecolor="white")
    mean = float(present.mean())
    if present.nunique() > 10:
        ax.axvline(mean, color="#C44E52", linestyle="--", linewidth=2)
    ax.set_title(f"{values.name}: mean {mean:,.2f}")
    ax.set_xlabel(str(values.name))
    ax.set_ylabel("rows")
    ax.text(0.98, 0.95, f"mean = {mean:,.2f}\nsd = {present.std():,.2f}\nn = {len(present)}",
            transform=ax.transAxes, ha="right", va="top", fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def category_plot(values: pd.Series, out: Path) -> Path:
    """Shares of a categorical column's most frequent values, the rest as `other`."""
    plt = pyplot()
    present = values.dropna().astype(str)
    shares = present.value_counts(normalize=True)
    kept = shares.head(MAX_CATEGORIES)
    labels = [str(v) for v in kept.index] + (["other"] if len(shares) > len(kept) else [])
    heights = list(kept.to_numpy()) + ([1.0 - float(kept.sum())] if len(shares) > len(kept) else [])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.bar(labels, heights, color="#4C72B0")
    ax.set_title(f"{values.name}: {len(shares)} categories, {values.isna().mean():.1%} missing")
    ax.set_ylabel("share of rows with a value")
    ax.tick_params(axis="x", labelrotation=45 if len(labels) > 8 else 0)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def calibration_plot(calibration: Calibration, out: Path) -> Path:
    """The reliability diagram: per confidence bin, how often the prediction was right,
    with the model's raw probabilities and after the profile's calibration (cross-fitted)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfectly calibrated")
    for bins, colour, name, ece in ((calibration.reliability_before, "#C44E52", "raw", calibration.ece_before),
                                    (calibration.reliability_after, "#4C72B0", "calibrated", calibration.ece_after)):
        if bins:
            confidence, right, rows = zip(*bins, strict=True)
            ax.plot(confidence, right, marker="o", color=colour, label=f"{name} (ECE {ece:.3f})")
            for x, y, n in zip(confidence, right, rows, strict=True):
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), fontsize=7, color=colour,
                            ha="center")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("probability of the predicted class")
    ax.set_ylabel("share of predictions that were right")
    ax.set_title(f"calibration on {calibration.source}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def calibration_summary(calibration: Calibration) -> str:
    q = calibration.reference
    lines = ["", f"Calibration of the model's probabilities, on {calibration.source}:", "",
             f"- expected calibration error {calibration.ece_before:.3f} raw, {calibration.ece_after:.3f} calibrated "
             "(cross-fitted: each half mapped by the other's fit)",
             f"- accuracy {q.accuracy:.1%}" + "".join(f", {name} {value:.1%}" for name, value in
                                                  (("precision", q.precision), ("recall", q.recall), ("F1", q.f1))
                                                  if value is not None)]
    return "\n".join(lines) + "\n"


def summary_table(frame: pd.DataFrame, target: str | None) -> str:
    numeric = frame.select_dtypes(include="number")
    stats = numeric.describe(percentiles=[0.25, 0.5, 0.75]).T
    lines = ["| column | count | mean | std | min | 25% | 50% | 75% | max |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in stats.iterrows():
        cells = " | ".join(f"{row[k]:,.2f}" for k in ("mean", "std", "min", "25%", "50%", "75%", "max"))
        lines.append(f"| {name} | {int(row['count'])} | {cells} |")
    categorical = [c for c in frame.columns if c not in numeric.columns]
    if categorical:
        lines += ["", "| categorical column | count | categories | most frequent |", "|---|---|---|---|"]
        for name in categorical:
            present = frame[name].dropna().astype(str)
            top = present.value_counts(normalize=True).head(3)
            common = ", ".join(f"`{v}` {share:.1%}" for v, share in top.items())
            lines.append(f"| {name} | {len(present)} | {present.nunique()} | {common} |")
    missing = frame.isna().mean()
    if missing.any():
        lines += ["", "Missing values:", ""]
        lines += [f"- `{name}`: {share:.1%} of rows" for name, share in missing.items() if share > 0]
    if target is not None and target in frame.columns:
        shares = frame[target].value_counts(normalize=True).sort_index()
        lines += ["", f"Share of each `{target}` value:", ""]
        lines += [f"- `{value}`: {share:.1%}" for value, share in shares.items()]
    return "\n".join(lines) + "\n"


def _guess_target(frame: pd.DataFrame) -> str | None:
    for name in ("success", "target", "label", "y"):
        if name in frame.columns:
            return name
    return None


def explore(data: Path, out: Path, target: str | None = None, profile: ReferenceProfile | None = None) -> list[Path]:
    frame = pd.read_csv(data)
    out.mkdir(parents=True, exist_ok=True)
    target = target or _guess_target(frame)
    written = [column_plot(frame[c], out / f"{c}.png") if pd.api.types.is_numeric_dtype(frame[c]) and
               not pd.api.types.is_bool_dtype(frame[c]) else category_plot(frame[c], out / f"{c}.png")
               for c in frame.columns]
    calibration = profile.calibration if profile is not None else None
    if calibration is not None:
        written.append(calibration_plot(calibration, out / "calibration.png"))
    summary = out / "summary.md"
    summary.write_text(f"# {data.name}\n\n{len(frame)} rows, {frame.shape[1]} columns.\n\n" + summary_table(frame, target)
                       + (calibration_summary(calibration) if calibration is not None else ""))
    written.append(summary)
    return written
