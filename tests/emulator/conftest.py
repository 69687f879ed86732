"""Make the shared case builders of this folder (``emulator_cases.py``) importable in any import mode."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
