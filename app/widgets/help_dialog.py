"""Help: the user guide and the shortcut list in one window; About with version and build."""

from __future__ import annotations

import html
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTabWidget, QTextBrowser, QVBoxLayout, QWidget

from app.widgets.shortcuts import cheat_sheet_html

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "user_guide.md"
BUILD_FILE = REPO / "resources" / "BUILD"  # written by installers/build_linux.sh into a bundle


def version() -> str:
    try:
        return importlib.metadata.version("radstation")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build() -> str:
    """The bundle's build stamp, else the git commit of a checkout, else 'development'."""
    if BUILD_FILE.exists():
        return BUILD_FILE.read_text(encoding="utf-8").strip()
    if (REPO / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %cs"], capture_output=True,
                                 text=True, timeout=5, check=True).stdout.strip()
            return f"git {out}" if out else "development"
        except (OSError, subprocess.SubprocessError):
            pass
    return "development"


def about_text() -> str:
    from PySide6 import __version__ as pyside_version

    return (f"<h3>RadStation {html.escape(version())}</h3>"
            f"<p>Build: {html.escape(build())}<br>Python {platform.python_version()}, Qt for Python {pyside_version}"
            f"</p><p>An offline reading workstation with a local AI engine. AI output is a draft for a "
            "radiologist to review; synthetic images are never for diagnosis.</p>"
            "<p>Demo images: NIH Clinical Center ChestX-ray14 (https://nihcc.app.box.com/v/ChestXray-NIHCC; "
            "Wang et al., CVPR 2017).</p>")


class HelpDialog(QDialog):
    def __init__(self, actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("RadStation help")
        self.tabs = QTabWidget()
        self.guide = QTextBrowser()
        self.guide.setObjectName("userGuide")
        self.guide.setOpenExternalLinks(False)
        if GUIDE.exists():
            self.guide.setMarkdown(GUIDE.read_text(encoding="utf-8"))
        else:
            self.guide.setPlainText(f"The user guide is missing from this installation ({GUIDE}).")
        self.keys = QTextBrowser()
        self.keys.setObjectName("shortcutSheet")
        self.keys.setHtml(cheat_sheet_html(actions))
        self.about = QTextBrowser()
        self.about.setHtml(about_text())
        self.tabs.addTab(self.guide, "User guide")
        self.tabs.addTab(self.keys, "Keyboard shortcuts")
        self.tabs.addTab(self.about, "About")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(buttons)
        self.resize(820, 720)
