from __future__ import annotations

import os
import warnings

# platformdirs warns when XDG_RUNTIME_DIR is unset (CI): harmless for us.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
