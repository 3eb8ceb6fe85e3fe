"""Cold start: import time of each Lambda handler module in a fresh interpreter, against ``import boto3`` plus
Powertools' ``Logger`` alone (target: ≤ 1.5×).

Each sample is a new ``python`` process that imports the handler module the way the Lambda runtime does (the
function's directory on ``sys.path``, then ``import app``) and reports the time spent in that import statement
(``time.perf_counter`` around it). Interpreter start-up is the same for both and is reported separately as whole
process wall time. Samples are interleaved (handler, reference, handler, …); medians are reported.

    .venv/bin/python bench/cold_start.py [--runs 15] [--breakdown]

``--breakdown`` adds, per handler, where the import time beyond the reference goes (``python -X importtime``,
grouped by top-level package).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

from _common import ROOT, Paired, machine, print_paired, save

REFERENCE = "import boto3\nfrom aws_lambda_powertools import Logger\n"
HANDLERS = {name: ROOT / "functions" / name for name in ("send_api", "worker")}
# What the Lambda environment sets and the handlers' Powertools objects read at import.
LAMBDA_ENV = {
    "POWERTOOLS_SERVICE_NAME": "postroom",
    "POWERTOOLS_METRICS_NAMESPACE": "Postroom",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "PYTHONDONTWRITEBYTECODE": "",
}

TIMED = """
import sys, time
{setup}
t0 = time.perf_counter()
{body}
t1 = time.perf_counter()
print(t1 - t0)
"""


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POSTROOM_", "AWS_", "POWERTOOLS_"))}
    return {**base, **{k: v for k, v in LAMBDA_ENV.items() if v}}


def run_import(setup: str, body: str) -> tuple[float, float]:
    """(seconds inside the import, seconds of the whole process)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(setup=setup, body=body)],
        capture_output=True,
        text=True,
        check=True,
        env=env(),
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    return float(out.stdout.strip().splitlines()[-1]), wall


def handler_code(name: str) -> tuple[str, str]:
    return f"sys.path.insert(0, {str(HANDLERS[name])!r})", "import app"


def breakdown(name: str) -> list[tuple[str, float]]:
    """Cumulative import time of top-level packages first imported by the handler, with the reference pre-imported."""
    setup, body = handler_code(name)
    code = f"import sys\n{REFERENCE}{setup}\n{body}\n"
    totals: dict[str, float] = defaultdict(float)
    runs = 5
    for _ in range(runs):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True, env=env()
        ).stderr
        lines = [line for line in err.splitlines() if line.startswith("import time:") and "|" in line]
        # Only what comes after the reference's imports (the reference's last top-level import is the Logger's).
        start = max(i for i, line in enumerate(lines) if re.search(r"\|\s*aws_lambda_powertools$", line)) + 1
        for line in lines[start:]:
            _, self_us, _cumulative, module = (part.strip() for part in re.split(r"[:|]", line, maxsplit=3))
            totals[module.strip().split(".")[0]] += int(self_us) / 1e6 / runs
    return sorted(totals.items(), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="pairs per handler (≥ 10)")
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    print(f"cold start, {machine()}")
    results = {}
    for name in HANDLERS:
        imports = Paired(f"import functions/{name}/app.py", "s")
        processes = Paired(f"  whole process (interpreter start-up included), {name}", "s")
        setup, body = handler_code(name)
        for _ in range(2):  # warm the file system cache and the bytecode caches
            run_import(setup, body)
            run_import("", REFERENCE)
        for i in range(args.runs):
            if i % 2 == 0:
                a = run_import(setup, body)
                b = run_import("", REFERENCE)
            else:
                b = run_import("", REFERENCE)
                a = run_import(setup, body)
            imports.add(a[0], b[0])
            processes.add(a[1], b[1])
        print_paired(imports, target=1.5)
        print_paired(processes)
        results[name] = {"import": imports.summary(), "process": processes.summary()}
        if args.breakdown:
            top = breakdown(name)
            results[name]["breakdown"] = top
            print(
                "  beyond the reference, by top-level package (self time summed): "
                + ", ".join(f"{pkg} {sec * 1000:.0f} ms" for pkg, sec in top[:10])
            )
    print(f"saved {save('cold_start', results)}")


if __name__ == "__main__":
    main()
