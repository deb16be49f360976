"""M3Ret desktop application (PySide6 + VTK); imports only engine."""
