"""How many real photos the quality gate sends back, by class, and how many of those the model would have referred.

``python -m training.gate_check DIR [--model M]`` screens every image of ``DIR/benign`` and
``DIR/malignant`` twice through the real :class:`kiosk.screening.Screener`: with the gate (what
the kiosk says) and without it (what the model alone would say), and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from kiosk.model import Model
from kiosk.screening import Screener
from kiosk.vision.loader import load_image

SUFFIXES = {".jpg", ".jpeg", ".png"}


def gate_outcomes(screener: Screener, files: list[Path]) -> dict[str, Any]:
    """Outcome counts ("low", "refer", "refer:lesion_unclear", "retake:<reason>") and referable send-backs."""
    outcomes: Counter[str] = Counter()
    referable_sent_back = 0
    for path in files:
        image = load_image(path)
        gated = screener.screen_image(image)
        if gated.status == "ok":
            outcomes[f"{gated.risk}:{gated.reason}" if gated.reason else str(gated.risk)] += 1
            continue
        outcomes[f"{gated.status}:{gated.reason}"] += 1
        ungated = screener.screen_image(image, apply_quality_gate=False)
        referable_sent_back += ungated.risk == "refer"
    sent_back = sum(n for k, n in outcomes.items() if k.startswith("retake"))
    return {
        "n": len(files),
        "sent_back": sent_back,
        "sent_back_rate": round(sent_back / max(1, len(files)), 4),
        "referable_sent_back": referable_sent_back,
        "outcomes": dict(sorted(outcomes.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--model", default="models/melanoma_int8.tflite")
    args = parser.parse_args(argv)
    screener = Screener(Model.load(Path(args.model)))
    report = {}
    for label in ("benign", "malignant"):
        files = sorted(p for p in (args.directory / label).iterdir() if p.suffix.lower() in SUFFIXES)
        report[label] = gate_outcomes(screener, files)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
