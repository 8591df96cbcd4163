"""Whole-app synth time against an empty CDK app, measured in the same run.

Each sample is a fresh process, as `cdk synth` runs it: jsii start-up, the
app, cdk-nag's validation and the writing of the cloud assembly. Both apps get
cdk.json's context (feature flags included) the way the CDK CLI passes it;
the empty app's CDK template validation reports instead of failing, since an
empty stack has no Resources section and would fail it.
The last line is `synth: <ratio>x empty app` (goal: at most 3x).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
EMPTY_APP = (
    "import aws_cdk as cdk\napp = cdk.App()\ncdk.Stack(app, 'Empty')\napp.synth()\n"
)


def _time(argv: list[str], context: dict[str, object]) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        env = {
            **os.environ,
            "CDK_OUTDIR": outdir,
            "CDK_CONTEXT_JSON": json.dumps(context),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        }
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    empty_context = {**context, "@aws-cdk/core:validateAgainstDefaultRules": False}
    app: list[float] = []
    empty: list[float] = []
    for _ in range(RUNS):
        empty.append(_time([sys.executable, "-c", EMPTY_APP], empty_context))
        app.append(_time([sys.executable, "app.py"], context))
    app_median = statistics.median(app)
    empty_median = statistics.median(empty)
    print(f"empty app: median {empty_median:.2f} s over {RUNS} runs")
    print(f"whole app: median {app_median:.2f} s over {RUNS} runs")
    print(f"synth: {app_median / empty_median:.2f}x empty app")


if __name__ == "__main__":
    main()
