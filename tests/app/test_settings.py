"""Settings persist in an INI file under the user config dir (M3RET_HOME in tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import user_config_dir
from app.settings import DEFAULT_SHORTCUTS, SETTINGS_FILENAME, AppSettings
from app.window_level import PRESETS, Window


def test_values_survive_a_restart(isolated_home: Path) -> None:
    settings = AppSettings()
    assert settings.path == user_config_dir() / SETTINGS_FILENAME
    assert settings.path.is_relative_to(isolated_home)
    settings.last_library = Path("/libraries/a")
    settings.last_library = Path("/libraries/b")
    settings.k = 25
    settings.modality_scope = "cross"
    settings.set_window_preset("lung", Window(-500.0, 1400.0))
    settings.set_shortcut("find_similar", "Ctrl+K")
    settings.sync()
    assert settings.path.is_file()

    again = AppSettings()
    assert again.last_library == Path("/libraries/b")
    assert again.recent_libraries == [Path("/libraries/b"), Path("/libraries/a")]
    assert again.k == 25 and again.modality_scope == "cross"
    assert again.window_presets()["lung"] == Window(-500.0, 1400.0)
    assert again.window_presets()["bone"] == PRESETS["bone"]
    assert again.shortcuts()["find_similar"] == "Ctrl+K"
    assert again.shortcuts()["quit"] == DEFAULT_SHORTCUTS["quit"]


def test_bad_values_fall_back_to_defaults() -> None:
    settings = AppSettings()
    settings.qsettings.setValue("presets/brain", "forty,eighty")
    settings.qsettings.setValue("search/scope", "sideways")
    assert settings.window_presets()["brain"] == PRESETS["brain"]
    assert settings.modality_scope == "all"
    assert settings.last_library is None
    with pytest.raises(KeyError):
        settings.set_shortcut("launch_rockets", "Ctrl+R")
