"""The `modelmon` command. Each verb fails with one sentence, never a traceback wall."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelmon.cli.parser import build_parser
from modelmon.errors import ModelmonError

if TYPE_CHECKING:
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ModelmonError as exc:
        print(f"modelmon: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
