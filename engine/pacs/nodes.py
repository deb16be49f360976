"""Remote DICOM nodes and the listener's settings, kept in ``pacs.ini`` under the user config folder.

::

    [listener]
    ae_title = M3RET            ; our AE title (SCP and SCU)
    port = 11112                ; the storage SCP's port
    allow = ORTHANC, PACS1      ; calling AE titles allowed to send to us; empty = everybody is refused
    settle_seconds = 10         ; a series is indexed once no instance arrived for this long
    library =                   ; library received studies go to; empty = the default library

    [node PACS1]                ; one section per remote node ("node NAME")
    ae_title = PACS1
    host = pacs.example.org
    port = 104
    timeout = 30                ; seconds (association, DIMSE and network)

``--node`` takes a node name from this file or ``AE@HOST:PORT``.
"""

from __future__ import annotations

import configparser
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import user_config_dir
from engine.pacs import PacsError

log = logging.getLogger(__name__)

SETTINGS_FILENAME = "pacs.ini"
DEFAULT_AE_TITLE = "M3RET"
DEFAULT_PORT = 11112
DEFAULT_SETTLE_S = 10.0
DEFAULT_TIMEOUT_S = 30.0
_NODE_PREFIX = "node "
_NODE_SPEC = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


def valid_ae_title(title: str) -> str:
    """``title`` stripped, or ``PacsError``: 1-16 printable ASCII characters, no backslash."""
    title = title.strip()
    if not 1 <= len(title) <= 16 or not all(32 <= ord(c) < 127 and c != "\\" for c in title):
        raise PacsError(f"invalid AE title {title!r}: 1-16 printable ASCII characters")
    return title


def _valid_port(value: int | str, what: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise PacsError(f"{what}: port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise PacsError(f"{what}: port {port} is not in 1-65535")
    return port


@dataclass(frozen=True)
class Node:
    """A remote DICOM node (application entity)."""

    name: str
    ae_title: str
    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT_S

    def __str__(self) -> str:
        spec = f"{self.ae_title}@{self.host}:{self.port}"
        return spec if self.name == self.ae_title else f"{self.name} ({spec})"


@dataclass
class PacsSettings:
    """Our AE title and listener options, and the configured remote nodes (by name)."""

    ae_title: str = DEFAULT_AE_TITLE
    port: int = DEFAULT_PORT
    allow: list[str] = field(default_factory=list)
    settle_seconds: float = DEFAULT_SETTLE_S
    library: Path | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "PacsSettings":
        """Read ``path`` (default: ``pacs.ini`` in the user config folder); a missing file gives the defaults."""
        path = Path(path) if path is not None else default_settings_path()
        settings = cls(path=path)
        if not path.is_file():
            return settings
        parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
        try:
            parser.read(path, encoding="utf-8")
            listener = parser["listener"] if parser.has_section("listener") else {}
            settings.ae_title = valid_ae_title(listener.get("ae_title", DEFAULT_AE_TITLE))
            settings.port = _valid_port(listener.get("port", DEFAULT_PORT), f"{path} [listener]")
            settings.allow = split_ae_titles(listener.get("allow", ""))
            settings.settle_seconds = float(listener.get("settle_seconds", DEFAULT_SETTLE_S))
            library = listener.get("library", "").strip()
            settings.library = Path(library).expanduser() if library else None
            for section in parser.sections():
                if section.startswith(_NODE_PREFIX):
                    name = section[len(_NODE_PREFIX):].strip()
                    values = parser[section]
                    settings.nodes[name] = Node(
                        name=name, ae_title=valid_ae_title(values.get("ae_title", name)),
                        host=values.get("host", "").strip() or "127.0.0.1",
                        port=_valid_port(values.get("port", "104"), f"{path} [{section}]"),
                        timeout=float(values.get("timeout", DEFAULT_TIMEOUT_S)),
                    )
        except (configparser.Error, ValueError) as exc:
            raise PacsError(f"{path}: {str(exc).splitlines()[0]}") from exc
        return settings

    def save(self, path: Path | None = None) -> Path:
        """Write the settings (atomically) to ``path`` or where they were loaded from."""
        path = Path(path or self.path or default_settings_path())
        parser = configparser.ConfigParser()
        parser["listener"] = {
            "ae_title": self.ae_title, "port": str(self.port), "allow": ", ".join(self.allow),
            "settle_seconds": f"{self.settle_seconds:g}", "library": str(self.library or ""),
        }
        for name, node in self.nodes.items():
            parser[f"{_NODE_PREFIX}{name}"] = {
                "ae_title": node.ae_title, "host": node.host, "port": str(node.port), "timeout": f"{node.timeout:g}",
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            parser.write(f)
        tmp.replace(path)
        self.path = path
        return path

    def node(self, spec: str) -> Node:
        """A node by its name in the settings, or from ``AE@HOST:PORT``; ``PacsError`` naming what is wrong."""
        spec = spec.strip()
        if spec in self.nodes:
            return self.nodes[spec]
        match = _NODE_SPEC.match(spec)
        if match is None:
            known = ", ".join(sorted(self.nodes)) or "none configured"
            raise PacsError(f"unknown node {spec!r}: give AE@HOST:PORT or a node name from "
                            f"{self.path or default_settings_path()} ({known})")
        ae_title = valid_ae_title(match["ae"])
        return Node(ae_title, ae_title, match["host"], _valid_port(match["port"], spec))


def split_ae_titles(text: str) -> list[str]:
    """``"A, B C"`` -> ``["A", "B", "C"]`` (comma or space separated), each checked."""
    return [valid_ae_title(t) for t in re.split(r"[,\s]+", text) if t]


def default_settings_path() -> Path:
    """``pacs.ini`` in the user config folder."""
    return user_config_dir() / SETTINGS_FILENAME
