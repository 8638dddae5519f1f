"""Make the report screenshots in docs/screenshots/ (run by hand, offscreen):

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/app/reports/report_screenshots.py docs/screenshots
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout: tests.support

from PySide6.QtWidgets import QApplication  # noqa: E402

from app.db.database import Database  # noqa: E402
from app.reports.keys import create_self_signed, default_p12_path  # noqa: E402
from app.reports.service import ReportService  # noqa: E402
from app.reports.users import UserService  # noqa: E402
from tests.support.reports_testing import FAST_HASHER, PASSWORD, STUDY_UID, add_study  # noqa: E402

AI_FINDINGS = ("The cardiomediastinal silhouette is within normal limits. There is a small left pleural effusion "
               "with adjacent basilar atelectasis. No pneumothorax. No focal consolidation in the right lung.\n"
               "Degenerative changes of the thoracic spine.")
AI_IMPRESSION = "Small left pleural effusion with basilar atelectasis."


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    os.environ["RADSTATION_HOME"] = str(tmp / "home")
    app = QApplication([])
    app.setStyle("Fusion")
    db = Database.open(f"sqlite:///{tmp / 'shots.db'}")
    add_study(db)
    users = UserService(db, hasher=FAST_HASHER)
    users.add_user("jdoe", PASSWORD, "radiologist", "Dr Jane Doe")
    create_self_signed("Dr Jane Doe", PASSWORD, default_p12_path("jdoe"))
    me = users.authenticate("jdoe", PASSWORD)
    service = ReportService(db, users)

    from app.widgets.report_editor import ReportEditor
    from app.widgets.sign_dialog import SignDialog

    editor = ReportEditor(db, STUDY_UID, lambda: me, service=service)
    editor.resize(1280, 760)
    editor.show()
    editor.editors["indication"].setPlainText("Shortness of breath, fever for 3 days.")
    editor.fill_defaults()
    editor.save_now()
    v = editor.version
    editor.load_ai_draft(AI_FINDINGS, AI_IMPRESSION,
                         {"engine": "medim-diffusion", "weights_hash": "9f2c4be1d07a" + "0" * 52, "seed": 1234},
                         [{"token": "small", "score": 0.81}, {"token": "atelectasis", "score": 0.67}])
    app.processEvents()
    editor.grab().save(str(out / "report_editor.png"))

    f = editor.editors["findings"]
    f.setPlainText(AI_FINDINGS.replace("small left pleural effusion", "moderate left pleural effusion") +
                   " Possible mild cardiomegaly.")
    editor.save_now()
    editor.tabs.setCurrentIndex(1)
    app.processEvents()
    editor.grab().save(str(out / "report_editor_diff.png"))

    dialog = SignDialog(service, service.version(v.id), me, service.identity(STUDY_UID), editor)
    dialog.show()
    dialog.password.setText("secret-password")
    app.processEvents()
    dialog.grab().save(str(out / "report_sign_dialog.png"))
    dialog.close()

    service.sign(v.id, me, PASSWORD)
    pdf = tmp / "report.pdf"
    pdf.write_bytes(service.signed_pdf(v.id))
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(out / "report_pdf_page1")], check=True)
    editor.reload()
    editor.tabs.setCurrentIndex(0)
    app.processEvents()
    editor.grab().save(str(out / "report_editor_signed.png"))
    print("wrote", sorted(p.name for p in out.glob("report_*.png")))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
