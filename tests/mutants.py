"""Wrong rules that the promtool cases must catch: mutation testing of the generated rules.

A rule test that passes proves little unless a *wrong* rule fails it. From the rendered
rules this derives a catalogue of small, plausible mistakes - a traffic guard dropped, one
branch of an `or` dropped, `for` set to 0, a threshold doubled, halved or pushed to an
extreme, a window swapped for another, `ln` dropped, `max` for `min`, a wrong quantile, a
ratio over the wrong denominator - writes each into a copy of the stack and runs the
promtool cases against it. A mutant the cases still pass "survives": a hole in the tests.
Mutants that cannot be told apart from the right rule by any data are listed in
`EQUIVALENT` with a reason, never dropped silently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelmon.rules.series import Names
from modelmon.settings import Settings
from modelmon.targets.layout import Layout

_SET_OPERATORS = ("and", "or", "unless")
_COMPARISON = re.compile(r"(>=|<=|==|!=|>|<)(\s*)(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w.])")
_WINDOW = re.compile(r"\[(\d+(?:ms|s|m|h|d))\]")
_QUANTILE = re.compile(r"histogram_quantile\((\d*\.?\d+)")
_MODIFIER = re.compile(r"\s*(?:on|ignoring)\s*\([^)]*\)(?:\s*group_(?:left|right)(?:\s*\([^)]*\))?)?")

# (rule, kind) -> why no data can tell the mutant from the rule. Kept short on purpose: each
# entry is a claim that a reviewer should be able to check in one reading.
_SAME_REFERENCE = ("every replica of a model exports the same reference gauges, so max and min agree; they "
                   "differ only while two model versions are mixed, where neither is the right one")
EQUIVALENT: dict[tuple[str, str], str] = {
    (reference, "`max` for `min`"): _SAME_REFERENCE
    for reference in (Names.reference_ratio, Names.reference_cdf, Names.category_reference, Names.missing_reference,
                      Names.prediction_reference_cdf)
}


@dataclass(frozen=True)
class Mutant:
    rule: str  # the recorded series or alert it changes
    kind: str  # what was done, e.g. "drop `and` guard", "threshold x2"
    where: str  # the changed text, shortened
    changes: tuple[tuple[str, str], ...]  # the rule's fields as mutated (expr or for)
    index: int = 0  # which rule of that name (one series may be recorded by several rules)

    @property
    def name(self) -> str:
        which = f" (rule {self.index + 1} of that name)" if self.index else ""
        return f"{self.rule}{which}: {self.kind} ({self.where})"


def _groups(expr: str) -> Iterator[tuple[int, int]]:
    """(start, end) of the whole expression and of every parenthesised group's inside."""
    yield 0, len(expr)
    stack: list[int] = []
    quote = ""
    for i, ch in enumerate(expr):
        if quote:
            quote = "" if ch == quote and expr[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            stack.append(i + 1)
        elif ch == ")" and stack:
            yield stack.pop(), i


def _top_level_operators(expr: str, start: int, end: int) -> list[tuple[str, int, int]]:
    """Set operators (name, start, end of keyword and modifiers) at depth 0 of expr[start:end]."""
    out = []
    depth = 0
    i = start
    quote = ""
    while i < end:
        ch = expr[i]
        if quote:
            quote = "" if ch == quote and expr[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            for op in _SET_OPERATORS:
                if (expr.startswith(op, i) and (i == 0 or (not expr[i - 1].isalnum() and expr[i - 1] != "_"))
                        and not (expr[i + len(op): i + len(op) + 1].isalnum() or expr[i + len(op):].startswith("_"))):
                    stop = i + len(op)
                    modifier = _MODIFIER.match(expr, stop)
                    if modifier:
                        stop = modifier.end()
                    out.append((op, i, stop))
                    i = stop - 1
                    break
        i += 1
    return out


def set_operator_mutants(expr: str) -> Iterator[tuple[str, str, str]]:
    """(kind, where, mutated expr): each `and`/`unless` without its right side, each `or`
    without either side, in the expression and in every parenthesised group."""
    seen: set[str] = set()
    for start, end in _groups(expr):
        ops = _top_level_operators(expr, start, end)
        bounds = [start] + [b for _, a, b in ops]
        for k, (op, a, b) in enumerate(ops):
            left_start = bounds[k]
            right_end = ops[k + 1][1] if k + 1 < len(ops) else end
            if op in ("and", "unless"):
                mutated = expr[:a].rstrip() + expr[right_end:]
                where = expr[a:right_end].strip()
                candidates = [(f"drop `{op}` guard", where, mutated)]
            else:
                candidates = [
                    ("drop right `or` branch", expr[b:right_end].strip(), expr[:a].rstrip() + expr[right_end:]),
                    ("drop left `or` branch", expr[left_start:a].strip(), expr[:left_start] + expr[b:].lstrip()),
                ]
            for kind, where, mutated in candidates:
                if mutated not in seen:
                    seen.add(mutated)
                    yield kind, _short(where), mutated


def threshold_mutants(expr: str) -> Iterator[tuple[str, str, str]]:
    for match in _COMPARISON.finditer(expr):
        op, space, number = match.groups()
        value = float(number)
        extreme = -1e9 if op in ("<", "<=") else 1e9
        changes = [("threshold to an extreme", extreme)]
        if value != 0:
            changes = [("threshold x2", value * 2), ("threshold /2", value / 2), *changes]
        for kind, new in changes:
            mutated = expr[: match.start()] + f"{op}{space}{new!r}" + expr[match.end():]
            yield kind, f"{op} {number} -> {new!r}", mutated


def window_mutants(expr: str, windows: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    for match in _WINDOW.finditer(expr):
        for other in windows:
            if other != match.group(1):
                mutated = expr[: match.start()] + f"[{other}]" + expr[match.end():]
                yield "window swapped", f"[{match.group(1)}] -> [{other}]", mutated


def function_mutants(expr: str) -> Iterator[tuple[str, str, str]]:
    for match in re.finditer(r"\bln\(", expr):
        yield "`ln` dropped", "ln(...)", expr[: match.start()] + "(" + expr[match.end():]
    for a, b in (("max", "min"), ("min", "max")):
        for match in re.finditer(rf"\b{a}\b(?= by| \()", expr):
            yield f"`{a}` for `{b}`", a, expr[: match.start()] + b + expr[match.end():]
    for match in _QUANTILE.finditer(expr):
        q = float(match.group(1))
        other = 0.5 if q != 0.5 else 0.99
        yield "wrong quantile", f"{q} -> {other}", expr[: match.start(1)] + repr(other) + expr[match.end(1):]


def denominator_mutants(expr: str, record: str, recorded: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """A ratio over another recorded series of the same level as its denominator."""
    match = re.search(r"\n/ (?:ignoring \(\w+\) group_left\n)?(\(?)([a-z_]+:[a-z_0-9]+:[a-z_0-9]+)", expr)
    if not match:
        return
    current = match.group(2)
    level = current.split(":")[0]
    for other in recorded:
        if other not in (current, record) and other.split(":")[0] == level:
            yield "wrong denominator", f"{current} -> {other}", expr[: match.start(2)] + other + expr[match.end(2):]
            return


def catalogue(layout: Layout, settings: Settings) -> list[Mutant]:
    """Every mutant of the rules rendered under `layout`."""
    windows = sorted({settings.rate_window, settings.drift_window, settings.quality_window})
    out: list[Mutant] = []
    rules = [r for p in sorted(layout.rules.glob("*.yml")) for g in yaml.safe_load(p.read_text())["groups"]
             for r in g["rules"]]
    recorded = [r["record"] for r in rules if "record" in r]
    seen: dict[str, int] = {}
    for rule in rules:
        name = rule.get("record") or rule["alert"]
        index = seen[name] = seen.get(name, -1) + 1
        expr = rule["expr"]
        generators = [set_operator_mutants(expr), threshold_mutants(expr), window_mutants(expr, windows),
                      function_mutants(expr)]
        if "record" in rule:
            generators.append(denominator_mutants(expr, name, recorded))
        for generator in generators:
            out += [Mutant(name, kind, where, (("expr", mutated),), index) for kind, where, mutated in generator]
        if rule.get("for") and rule["for"] != "0s":
            out.append(Mutant(name, "`for` to 0", f"for {rule['for']}", (("for", "0s"),), index))
    return out


def _names_in(expr: str, names: Sequence[str]) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", expr)}


class _Suite:
    """The rendered rules and promtool cases, read once; writes the part of them that is
    about one mutant. promtool evaluates every rule at every step of every case, so a mutant
    is run against its related rules only, one case at a time, stopping at the first that
    fails it; the case that killed the last mutant of a rule is tried first. Files are
    written as JSON, which YAML readers (promtool's) take as they are."""

    def __init__(self, layout: Layout) -> None:
        self.rule_files = {p.name: yaml.safe_load(p.read_text()) for p in sorted(layout.rules.glob("*.yml"))}
        self.exprs: dict[str, str] = {}  # every rule of a name, read as one
        for d in self.rule_files.values():
            for g in d["groups"]:
                for r in g["rules"]:
                    name = r.get("record") or r["alert"]
                    self.exprs[name] = self.exprs.get(name, "") + "\n" + r["expr"]
        names = list(self.exprs)
        reads = {name: _names_in(expr, names) - {name} for name, expr in self.exprs.items()}
        self._reads = reads
        self._readers = {name: {r for r in names if name in reads[r]} for name in names}
        self.tests = [(p.stem, yaml.safe_load(p.read_text())) for p in sorted(layout.rule_tests.glob("*.yml"))]
        self.killer: dict[str, str] = {}  # rule -> the case that killed its last mutant

    def related(self, name: str) -> set[str]:
        """The rules a mistake in `name` can show through: itself, what reads it (so their
        cases can catch it), and what each of those reads (so they can be evaluated)."""
        readers = _closure({name}, self._readers)
        return _closure(readers, self._reads)

    def write(self, mutant: Mutant, out: Path) -> list[str]:
        """Write the mutated, related rules and one file per case about them; returns the
        case files, the likeliest killer first."""
        keep = self.related(mutant.rule)
        (out / "rules").mkdir(parents=True, exist_ok=True)
        groups = set()
        seen: dict[str, int] = {}

        def changed(rule: dict[str, Any]) -> dict[str, Any]:
            name = rule.get("record") or rule["alert"]
            index = seen[name] = seen.get(name, -1) + 1
            return dict(rule, **dict(mutant.changes)) if (name, index) == (mutant.rule, mutant.index) else rule

        for file, doc in self.rule_files.items():
            kept = []
            for group in doc["groups"]:
                rules = [changed(r) for r in group["rules"] if (r.get("record") or r["alert"]) in keep]
                if rules:
                    kept.append({**group, "rules": rules})
                    groups.add(group["name"])
            (out / "rules" / file).write_text(json.dumps({"groups": kept}))
        (out / "tests").mkdir(exist_ok=True)
        written = []
        for stem, doc in self.tests:
            for index, case in enumerate(doc["tests"]):
                alerts = [t for t in case.get("alert_rule_test") or [] if t["alertname"] in keep]
                exprs = [t for t in case.get("promql_expr_test") or [] if _names_in(t["expr"], list(keep))]
                if not (alerts or exprs):
                    continue
                name = f"tests/{stem}-{index:02d}.json"
                one = {**doc, "group_eval_order": [g for g in doc.get("group_eval_order", []) if g in groups],
                       "tests": [{**case, "alert_rule_test": alerts, "promql_expr_test": exprs}]}
                (out / name).write_text(json.dumps(one))
                written.append(name)
        first = self.killer.get(mutant.rule)
        return sorted(written, key=lambda n: n != first)


def _closure(start: set[str], step: dict[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for other in step[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    killed: bool
    equivalent: str | None = None


def run(layout: Layout, mutants: Sequence[Mutant], workdir: Path, jobs: int = 2) -> list[Outcome]:
    """Run the promtool cases about each mutant against it (see `_Suite`), `jobs` at a time."""
    suite = _Suite(layout)

    def one(index_mutant: tuple[int, Mutant]) -> Outcome:
        index, mutant = index_mutant
        copy = workdir / f"mutant-{index}"
        killed = False  # a mutant that no case is about survives: a hole in the tests
        for test in suite.write(mutant, copy):
            done = subprocess.run(["promtool", "test", "rules", test], cwd=copy,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                killed = True
                suite.killer[mutant.rule] = test
                break
        shutil.rmtree(copy, ignore_errors=True)
        return Outcome(mutant, killed, EQUIVALENT.get((mutant.rule, mutant.kind)))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, enumerate(mutants)))


def report(profile: str, outcomes: Sequence[Outcome]) -> str:
    killed = sum(o.killed for o in outcomes)
    equivalent = [o for o in outcomes if not o.killed and o.equivalent]
    survivors = [o for o in outcomes if not o.killed and not o.equivalent]
    counted = len(outcomes) - len(equivalent)
    score = killed / counted if counted else 1.0
    lines = [f"rule mutants ({profile} profile): {killed} of {counted} killed ({score:.0%}), "
             f"{len(equivalent)} equivalent, {len(survivors)} surviving"]
    for o in outcomes:
        state = "killed" if o.killed else ("equivalent: " + o.equivalent if o.equivalent else "SURVIVED")
        lines.append(f"  {state:10} {o.mutant.name}")
    return "\n".join(lines)


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
