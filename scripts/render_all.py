"""Render every stack modelmon generates into one folder: `python scripts/render_all.py OUT`.

A refactor must not change a rendered byte. Run this before and after, then `diff -r BEFORE AFTER`
(or `--check BEFORE`, which renders afresh into a temporary folder and compares). It renders the
bundled stores model and the example models of every kind (tests/kinds.py: a regressor, a
classifier with categorical and missing inputs, string classes) under both settings profiles, to
every target (a native render's own folder written as $OUT): compose, native, a native fleet (both rule evaluations) and Kubernetes.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelmon.cli import main as cli_main  # noqa: E402
from tests import kinds  # noqa: E402

TARGETS: dict[str, list[str]] = {
    "compose": ["--target", "compose"],
    "native": ["--target", "native"],
    "fleet-global": ["--target", "native", "--replicas", "2", "--shards", "2", "--rule-evaluation", "global"],
    "fleet-cluster": ["--target", "native", "--replicas", "2", "--shards", "2", "--rule-evaluation", "cluster"],
    "kubernetes": ["--target", "kubernetes"],
}


def _models(work: Path) -> dict[str, Path]:
    models = {"stores": shutil.copytree(ROOT / "models" / "stores", work / "stores")}
    with contextlib.redirect_stdout(io.StringIO()):
        models["houses"] = kinds.build_regressor(work / "houses")
        models["payments"] = kinds.build_categorical(work / "payments")
        models["species"] = kinds.build_string_classes(work / "species")
    return models


def render_all(out: Path) -> None:
    # The models sit inside OUT and the renders run from it, so the paths a stack writes to its
    # model (relative to the rendered folder, or to where the command runs) are the same wherever
    # OUT is and whoever runs this.
    out = out.resolve()
    work = out / "models"
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(out):
        _render_models(_models(work), out)
    shutil.rmtree(work)  # MLflow writes fresh ids and times into each model; the renders are what counts
    _relative(out)


def _render_models(models: dict[str, Path], out: Path) -> None:
    for name, model in models.items():
        for profile in ("production", "demo"):
            for target, flags in TARGETS.items():
                folder = out / name / profile / target
                with contextlib.redirect_stdout(io.StringIO()):
                    code = cli_main(["stack", "render", "--model", str(model), "--profile", profile,
                                     "--out", str(folder), *flags])
                if code:
                    sys.exit(f"stack render failed for {name} {profile} {target}")


def _relative(out: Path) -> None:
    """Native renders name their own folder (absolute paths): write it as $OUT, so two renders compare."""
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if str(out).encode() in data:
                path.write_bytes(data.replace(str(out).encode(), b"$OUT"))


def _differences(left: Path, right: Path) -> list[str]:
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], at: Path) -> None:
        found.extend(f"only in {left.name}: {at / n}" for n in cmp.left_only)
        found.extend(f"only in {right.name}: {at / n}" for n in cmp.right_only)
        found.extend(f"differs: {at / n}" for n in cmp.diff_files)
        for sub, child in cmp.subdirs.items():
            walk(child, at / sub)

    walk(filecmp.dircmp(left, right, ignore=[]), Path("."))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder to render into")
    parser.add_argument("--check", type=Path, help="a folder rendered before: render afresh and compare")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as fresh:
            render_all(Path(fresh))
            found = _differences(args.check, Path(fresh))
        print("\n".join(found) or f"identical to {args.check}")
        return 1 if found else 0
    if not args.out:
        parser.error("give OUT or --check BEFORE")
    render_all(args.out)
    print(f"rendered into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
