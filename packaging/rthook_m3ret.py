"""PyInstaller runtime hook: runs before the entry script of both packaged executables.

- never write byte code (or anything else) next to the executable: per-user data goes to platformdirs
  locations (engine.config), and the bundle folder stays read-only;
- point GDCM at its data dictionaries inside the bundle;
- keep onnxruntime from writing telemetry files (see below).
"""

import os
import sys

sys.dont_write_bytecode = True

_bundle = getattr(sys, "_MEIPASS", None)
if _bundle:
    os.environ.setdefault("GDCM_RESOURCES_PATH", os.path.join(_bundle, "_gdcm", "XML"))

# onnxruntime (1.2x+ Linux wheels) writes a device id and a telemetry event store under ~/.cache/Microsoft at import
# time unless told not to: the product promises no telemetry and per-user files only in its own folders.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
