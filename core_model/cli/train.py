"""``nafv-train``: one command, one sub-command per training or data task.

Sub-commands live in their own modules and are imported only when chosen, so
``nafv-train --help`` is instant and a missing optional piece never breaks the
others.
"""

from __future__ import annotations

import importlib
import sys

from core_model.domain.errors import NafvError

# name -> (module with main(argv), one-line help)
COMMANDS = {
    "seg": ("core_model.train.seg", "train the NaFV-Net segmentation network (or the U-Net baseline)"),
    "evaluate-seg": ("core_model.train.seg_eval", "Dice / IoU of segmentation weights on a CDD-CESM-layout folder"),
    "cls": ("core_model.train.cls", "train the four-view (or dual-view) classifier with patient-level k-fold CV"),
    "phantom": ("core_model.cli.phantom", "write synthetic four-view CEM studies with ground truth"),
}


def usage() -> str:
    lines = ["usage: nafv-train COMMAND [options]   (nafv-train COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"nafv-train: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"nafv-train {name}: not available in this version", file=sys.stderr)
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except NafvError as err:
        print(f"nafv-train {name}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nafv-train {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
