"""Rewrite weights without the tensors their architecture does not use, keeping the card.

    .venv/bin/python scripts/repack_weights.py IN.safetensors OUT.safetensors

Weights trained while the pretrained encoder still kept timm's unused tail blocks (stages after
the last one the encoder returns) carry those tensors; they never touch an output. This drops
exactly the tensors the rebuilt model has no place for, refuses anything else (a missing tensor, or
an extra one outside the encoder's tail), and writes the weights with the same card (plus a note and
the new sha256). The dropped tensors never reached an output: timm ran those blocks but returned
only the earlier stages, so every kept tensor and every output is as trained.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core_model.models.checkpoint import card_path, save_checkpoint  # noqa: E402
from core_model.models.registry import create_model  # noqa: E402

TAIL = re.compile(r"^(.*\.)?backbone\.net\.blocks\.\d+\.")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = Path(argv[0]), Path(argv[1])
    card = json.loads(card_path(src).read_text(encoding="utf-8"))
    state = load_file(str(src))
    model = create_model(card["architecture"]["name"], **card["architecture"]["config"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or any(not TAIL.match(k) for k in unexpected):
        print(f"refused: missing {missing[:3]}, unexpected outside the encoder tail "
              f"{[k for k in unexpected if not TAIL.match(k)][:3]}", file=sys.stderr)
        return 1
    card = dict(card)
    for k in ("weights_sha256", "weights_file", "date"):
        card.pop(k, None)
    card["repacked"] = (f"{len(unexpected)} unused encoder tail tensors dropped after training "
                        f"(scripts/repack_weights.py); they never reached an output")
    save_checkpoint(model, dst, card)
    print(f"{dst}: dropped {len(unexpected)} unused tensors, kept {len(model.state_dict())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
