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

import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .rules import Names, dump_yaml
from .settings import Settings
from .stack import Layout

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
    (Names.reference_ratio, "`max` for `min`"): _SAME_REFERENCE,
    (Names.reference_cdf, "`max` for `min`"): _SAME_REFERENCE,
}


@dataclass(frozen=True)
class Mutant:
    rule: str  # the recorded series or alert it changes
    kind: str  # what was done, e.g. "drop `and` guard", "threshold x2"
    where: str  # the changed text, shortened
    file: str  # rules file name
    text: str  # the whole mutated rules file

    @property
    def name(self) -> str:
        return f"{self.rule}: {self.kind} ({self.where})"


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
    files = {p.name: yaml.safe_load(p.read_text()) for p in sorted(layout.rules.glob("*.yml"))}
    recorded = [r["record"] for doc in files.values() for g in doc["groups"] for r in g["rules"] if "record" in r]
    for file, doc in files.items():
        for gi, group in enumerate(doc["groups"]):
            for ri, rule in enumerate(group["rules"]):
                name = rule.get("record") or rule["alert"]
                expr = rule["expr"]

                def mutate(changes: dict[str, Any], kind: str, where: str,
                           file: str = file, gi: int = gi, ri: int = ri, name: str = name) -> Mutant:
                    copy = yaml.safe_load(yaml.safe_dump(files[file]))
                    copy["groups"][gi]["rules"][ri].update(changes)
                    return Mutant(name, kind, where, file, dump_yaml(copy))

                generators = [set_operator_mutants(expr), threshold_mutants(expr), window_mutants(expr, windows),
                              function_mutants(expr)]
                if "record" in rule:
                    generators.append(denominator_mutants(expr, name, recorded))
                for generator in generators:
                    for kind, where, mutated in generator:
                        out.append(mutate({"expr": mutated}, kind, where))
                if rule.get("for") and rule["for"] != "0s":
                    out.append(mutate({"for": "0s"}, "`for` to 0", f"for {rule['for']}"))
    return out


def _related(rules: dict[str, str], name: str) -> set[str]:
    """The rules a mistake in `name` can show through: itself, what it reads (so it can be
    evaluated) and what reads it (so their cases can catch it), each with what it reads."""

    def reads(rule: str) -> set[str]:
        return {other for other in rules if other != rule and re.search(rf"(?<![\w:]){re.escape(other)}(?![\w:])",
                                                                         rules[rule])}

    def closure(start: set[str], step: Any) -> set[str]:
        seen = set(start)
        todo = list(start)
        while todo:
            for other in step(todo.pop()):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen

    readers = closure({name}, lambda rule: {r for r in rules if rule in reads(r)})
    return closure(readers, reads)


def _subset(layout: Layout, mutant: Mutant, out: Path) -> list[str]:
    """Write into `out` only the rules related to the mutant (mutated) and only the promtool
    cases about them; returns the test files to run. promtool evaluates every rule at every
    step of every case, so this makes a mutant cost a fraction of the whole suite."""
    docs = {p.name: yaml.safe_load(p.read_text()) for p in sorted(layout.rules.glob("*.yml"))}
    docs[mutant.file] = yaml.safe_load(mutant.text)
    exprs = {r.get("record") or r["alert"]: r["expr"] for d in docs.values() for g in d["groups"] for r in g["rules"]}
    keep = _related(exprs, mutant.rule)
    (out / "rules").mkdir(parents=True, exist_ok=True)
    for file, doc in docs.items():
        for group in doc["groups"]:
            group["rules"] = [r for r in group["rules"] if (r.get("record") or r["alert"]) in keep]
        doc["groups"] = [g for g in doc["groups"] if g["rules"]]
        (out / "rules" / file).write_text(dump_yaml(doc))
    groups = {g["name"] for d in docs.values() for g in d["groups"]}
    written = []
    (out / "tests").mkdir(exist_ok=True)
    for path in sorted(layout.rule_tests.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for index, case in enumerate(doc["tests"]):
            case["alert_rule_test"] = [t for t in case.get("alert_rule_test") or [] if t["alertname"] in keep]
            case["promql_expr_test"] = [t for t in case.get("promql_expr_test") or []
                                        if any(re.search(rf"(?<![\w:]){re.escape(k)}(?![\w:])", t["expr"])
                                               for k in keep)]
            if case["alert_rule_test"] or case["promql_expr_test"]:
                # One file per case: the first case that fails kills the mutant, and the rest
                # need not run.
                one = {**doc, "tests": [case],
                       "group_eval_order": [g for g in doc.get("group_eval_order", []) if g in groups]}
                name = f"tests/{path.stem}-{index:02d}.yml"
                (out / name).write_text(dump_yaml(one))
                written.append(name)
    return written


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    killed: bool
    equivalent: str | None = None


def run(layout: Layout, mutants: Sequence[Mutant], workdir: Path, jobs: int = 2) -> list[Outcome]:
    """Run the promtool cases about each mutant against it (see `_subset`), `jobs` at a time."""

    def one(index_mutant: tuple[int, Mutant]) -> Outcome:
        index, mutant = index_mutant
        copy = workdir / f"mutant-{index}"
        killed = False  # a mutant that no case is about survives: a hole in the tests
        for test in _subset(layout, mutant, copy):
            done = subprocess.run(["promtool", "test", "rules", test], cwd=copy,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                killed = True
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
