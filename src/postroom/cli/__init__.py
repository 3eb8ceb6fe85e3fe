"""``postroom …``: the commands that talk to the API (Typer; :mod:`postroom.cli.commands`), and the operator's
commands that run things or write the table with AWS credentials (argparse; :mod:`postroom.cli.table_commands`):
``local``, ``bridge``, ``submission-server``, ``doctor``, ``dkim``, and ``keys``/``stores``/``addresses`` given
``--table`` or ``--local`` (how the first admin key of a fresh stack is made: it has no key to call the API with).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Commands only the table-writing CLI has; `keys`, `stores` and `addresses` go there only with these flags.
OPERATOR_COMMANDS = frozenset({"local", "bridge", "submission-server", "doctor", "dkim"})
TABLE_FLAGS = ("--table", "--local", "--secret-prefix")


def _operator_command(argv: Sequence[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return False
    if words[0] in OPERATOR_COMMANDS:
        return True
    return words[0] in ("keys", "stores", "addresses") and any(
        a == flag or a.startswith(flag + "=") for a in argv for flag in TABLE_FLAGS
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if _operator_command(args) and "--help" not in args[:1]:
        from postroom.cli.table_commands import main as table_main

        return table_main(args)
    try:
        from postroom.cli.commands import app
    except ImportError as error:  # typer/rich come with the cli extra
        print(f"postroom: {error}; install the CLI with: pip install 'postroom[cli]'", file=sys.stderr)
        return 2
    try:
        app(args=args, prog_name="postroom", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0
