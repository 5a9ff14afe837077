#!/usr/bin/env bash
# Install everything into the CURRENT Python environment (no venv is created: activate one first
# if you want isolation). Offline except for the package registry; safe to re-run.
#   bash install.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

# Keep a torch that already imports (e.g. a CUDA build on a GPU cluster); otherwise take 2.13.0,
# pinned in the same command so pip never swaps in a several-GB CUDA build.
if "$PYTHON" -c "import torch" 2>/dev/null; then
  TORCH_SPEC="torch==$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])')"
else
  TORCH_SPEC="torch==2.13.0"
fi
"$PYTHON" -m pip install --disable-pip-version-check -q "$TORCH_SPEC" -e ".[test]"

HF_HUB_OFFLINE=1 "$PYTHON" - <<'PY'
import deepspeed, torch, transformers, minillm  # noqa: F401  (the import is the check)
device = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
print(f"install ok: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"deepspeed {deepspeed.__version__}, device {device}")
PY
