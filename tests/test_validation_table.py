"""`python -m validation.compare --quick` runs and reports zero mismatches."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_compare_quick_passes():
    proc = subprocess.run([sys.executable, "-m", "validation.compare", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PASS" in proc.stdout
