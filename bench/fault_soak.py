"""The long fault-injection run: the suite's harness (tests/fault/harness.py) over 10 000 messages.

    .venv/bin/python bench/fault_soak.py [--messages 10000] [--seed 20251127]

Prints the outcome and every broken invariant; exits 1 if any. On a 2-core machine expect ~10 minutes (moto's
in-process AWS emulation dominates); the run stops by itself after --wall-limit seconds.
"""

from __future__ import annotations

import argparse
import sys

from _common import ROOT, machine, save

sys.path.insert(0, str(ROOT))

from tests.fault.harness import FaultPlan, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=FaultPlan.seed)
    parser.add_argument("--wall-limit", type=float, default=3600)
    args = parser.parse_args()
    plan = FaultPlan(messages=args.messages, seed=args.seed, wall_limit=args.wall_limit)
    print(f"fault soak, {machine()}: {plan}")
    outcome = run(plan, progress=lambda line: print(f"  {line}", flush=True))
    print(outcome.summary())
    for problem in outcome.problems:
        print(f"PROBLEM: {problem}")
    save("fault_soak", {"summary": outcome.summary(), "problems": outcome.problems, "elapsed": outcome.elapsed})
    sys.exit(1 if outcome.problems else 0)


if __name__ == "__main__":
    main()
