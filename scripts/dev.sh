#!/usr/bin/env bash
# One entry point for a fresh clone: sets up .venv (idempotent) and then
#   demo  -> opens the viewer on the bundled demo study
#   test  -> runs the whole test suite, slow tests included (what CI runs)
#   quick -> runs the tests not marked slow (plain `pytest` does the same)
#   setup -> only sets up
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.nafv-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        # torch is installed first and pinned to the releases this machine kind
        # keeps on local disk (torchvision is needed by grad-cam); a GPU user who
        # already has torch in the venv keeps it (NAFV_KEEP_TORCH=1).
        if [ "${NAFV_KEEP_TORCH:-0}" != "1" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
            "$VENV/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
        fi
        "$VENV/bin/pip" install -q -e ".[dev]"
        touch "$stamp"
    fi
}

cmd=${1:-demo}
shift || true
setup
case "$cmd" in
    setup) ;;
    demo)
        # Qt's xcb platform plugin (X11 desktops, xvfb) needs these X libraries,
        # which minimal Debian/Ubuntu images lack.
        if [ -n "${DISPLAY:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            missing=""
            for lib in libxcb-cursor.so.0:libxcb-cursor0 libxcb-icccm.so.4:libxcb-icccm4 \
                       libxcb-keysyms.so.1:libxcb-keysyms1 libxkbcommon-x11.so.0:libxkbcommon-x11-0; do
                ldconfig -p 2>/dev/null | grep -q "${lib%%:*}" || missing="$missing ${lib##*:}"
            done
            if [ -n "$missing" ]; then
                (apt-get update -qq && apt-get install -y -qq $missing) >/dev/null 2>&1 || true
            fi
        fi
        exec "$VENV/bin/nafv-viewer" --demo "$@" ;;
    test)
        # The PDF report tests render pages with poppler (Debian's poppler-utils);
        # without it those checks skip, so install it when we can.
        if ! command -v pdftoppm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            (apt-get update -qq && apt-get install -y -qq poppler-utils) >/dev/null 2>&1 || echo "note: poppler-utils not installed; PDF rendering checks will skip" >&2
        fi
        # The PACS tests start a real Orthanc with its DICOMweb plugin (Debian's orthanc and
        # orthanc-dicomweb) on free ports of its own; without them those tests skip.
        if ! { command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ]; } || ! ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb) >/dev/null 2>&1 \
                    || echo "note: orthanc not installed; PACS tests will skip" >&2
            fi
        fi
        # pyproject's addopts leave the slow tests out of plain `pytest`; this -m takes them back in.
        QT_QPA_PLATFORM=offscreen exec "$VENV/bin/python" -m pytest -q -m "slow or not slow" "$@" ;;
    quick)
        QT_QPA_PLATFORM=offscreen exec "$VENV/bin/python" -m pytest -q "$@" ;;
    *) echo "usage: scripts/dev.sh [demo|test|quick|setup]" >&2; exit 2 ;;
esac
