"""Tools > Report templates and macros: edit templates and AutoText in the app instead of JSON files.

Anyone keeps personal templates and macros; an administrator also edits the site's (shared by every user
of the workstation). Built-in templates are read-only: "Copy to personal" starts from one. Everything is
checked as the report editor will read it before it is written.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.reports.content import SECTION_KEYS, SECTION_TITLES, ReportContent
from app.reports.fields import fields_in
from app.reports.macros import Macro, MacroLibrary
from app.reports.templates import ReportTemplate, TemplateError, TemplateLibrary, TemplateMatch
from app.reports.users import AuthSession

KEY_ROLE = Qt.ItemDataRole.UserRole + 11


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.replace(";", ",").split(",") if w.strip())


class TemplateEditorDialog(QDialog):
    def __init__(self, user: AuthSession, parent: QWidget | None = None, library: TemplateLibrary | None = None,
                 macros: MacroLibrary | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report templates and macros")
        self.user = user
        self.library = library or TemplateLibrary.default()
        self.macro_library = macros or MacroLibrary(self.library)
        self.current: ReportTemplate | None = None
        self.tabs = QTabWidget()
        self.tabs.addTab(self._template_page(), "Templates")
        self.tabs.addTab(self._macro_page(), "Macros (AutoText)")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setObjectName("templateMessage")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAutoDefault(False)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.message)
        lay.addWidget(buttons)
        self.resize(1000, 720)
        self.reload()

    # -- templates -----------------------------------------------------------------------------------------
    def _template_page(self) -> QWidget:
        self.template_list = QListWidget()
        self.template_list.setObjectName("templateList")
        self.template_list.currentItemChanged.connect(lambda item, _prev: self._show(item))
        self.id_edit = QLineEdit()
        self.title_edit = QLineEdit()
        self.modalities_edit = QLineEdit()
        self.modalities_edit.setPlaceholderText("e.g. CR, DX")
        self.body_parts_edit = QLineEdit()
        self.body_parts_edit.setPlaceholderText("e.g. CHEST")
        self.procedures_edit = QLineEdit()
        self.procedures_edit.setPlaceholderText("words in the study description, e.g. chest, thorax")
        self.code_edit = QLineEdit()
        self.code_edit.setPlaceholderText("LOINC code | meaning, e.g. 36643-5 | XR Chest 2 Views")
        self.section_edits: dict[str, QPlainTextEdit] = {}
        form = QFormLayout()
        form.addRow("Id (file name)", self.id_edit)
        form.addRow("Title", self.title_edit)
        form.addRow("Modalities", self.modalities_edit)
        form.addRow("Body parts", self.body_parts_edit)
        form.addRow("Procedure words", self.procedures_edit)
        form.addRow("Procedure code", self.code_edit)
        for key in SECTION_KEYS:
            edit = QPlainTextEdit()
            edit.setObjectName(f"template_{key}")
            edit.setFixedHeight(90 if key == "findings" else 48)
            self.section_edits[key] = edit
            form.addRow(SECTION_TITLES[key], edit)
        hint = QLabel("Fields: [normal|enlarged] is a pick-list (first choice = default, ... = type your own), "
                      "[size] a blank. The report cannot be signed while a field is left.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color:#666;")
        form.addRow(hint)
        self.save_personal = QPushButton("Save as personal")
        self.save_site = QPushButton("Save as site")
        self.save_site.setToolTip("Shared with every user of this workstation (administrators)")
        self.copy_button = QPushButton("Copy to personal")
        self.new_button = QPushButton("New")
        self.delete_button = QPushButton("Delete")
        for b in (self.save_personal, self.save_site, self.copy_button, self.new_button, self.delete_button):
            b.setAutoDefault(False)
        self.save_personal.clicked.connect(lambda: self.save_template("personal"))
        self.save_site.clicked.connect(lambda: self.save_template("site"))
        self.copy_button.clicked.connect(self.copy_to_personal)
        self.new_button.clicked.connect(self.new_template)
        self.delete_button.clicked.connect(self.delete_template)
        row = QHBoxLayout()
        for b in (self.new_button, self.copy_button, self.delete_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.save_site)
        row.addWidget(self.save_personal)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addLayout(form)
        rl.addLayout(row)
        split = QSplitter()
        split.addWidget(self.template_list)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        return split

    def reload(self, select: str = "") -> None:
        self.template_list.clear()
        for tpl in self.library.templates(self.user.username):
            item = QListWidgetItem(tpl.label)
            item.setData(KEY_ROLE, tpl.key)
            self.template_list.addItem(item)
            if tpl.key == select:
                self.template_list.setCurrentItem(item)
        if self.library.problems:
            self._say("Some templates could not be read: " + "; ".join(self.library.problems), error=True)
        if self.template_list.currentItem() is None and self.template_list.count():
            self.template_list.setCurrentRow(0)
        self._load_macros()

    def _show(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        tpl = self.library.find(item.data(KEY_ROLE), self.user.username)
        if tpl is None:
            return
        self.current = tpl
        self.id_edit.setText(tpl.exam_type)
        self.title_edit.setText(tpl.title)
        self.modalities_edit.setText(", ".join(tpl.match.modalities))
        self.body_parts_edit.setText(", ".join(tpl.match.body_parts))
        self.procedures_edit.setText(", ".join(tpl.match.procedures))
        code = tpl.procedure_code
        self.code_edit.setText(f"{code.get('value', '')} | {code.get('meaning', '')}" if code else "")
        for key, edit in self.section_edits.items():
            edit.setPlainText(tpl.content.get(key))
        builtin = tpl.scope == "builtin"
        self.delete_button.setEnabled(not builtin and (tpl.scope == "personal" or self.user.can_manage_users))
        self.save_site.setEnabled(self.user.can_manage_users)
        self.save_site.setToolTip("Shared with every user of this workstation" if self.user.can_manage_users
                                  else "Only an administrator edits site templates")

    def form_template(self) -> ReportTemplate:
        value, _, meaning = self.code_edit.text().partition("|")
        code = {"value": value.strip(), "scheme": "LN", "meaning": meaning.strip()} if value.strip() else {}
        mods = _words(self.modalities_edit.text())
        return ReportTemplate(
            exam_type=self.id_edit.text().strip().lower(), title=self.title_edit.text().strip(),
            modality=mods[0].upper() if mods else "", procedure_code=code,
            content=ReportContent({k: e.toPlainText() for k, e in self.section_edits.items()}),
            match=TemplateMatch(tuple(m.upper() for m in mods), tuple(b.upper() for b in _words(self.body_parts_edit.text())),
                                tuple(p.lower() for p in _words(self.procedures_edit.text()))))

    def save_template(self, scope: str) -> ReportTemplate | None:
        if scope == "site" and not self.user.can_manage_users:
            self._say("Only an administrator edits site templates; save it as personal instead.", error=True)
            return None
        try:
            saved = self.library.save(self.form_template(), scope, self.user.username)
        except TemplateError as exc:
            self._say(f"Not saved: {exc}", error=True)
            return None
        n = sum(len(fields_in(saved.content.get(k))) for k in SECTION_KEYS)
        self._say(f"Saved “{saved.title}” as a {scope} template ({n} field{'s' if n != 1 else ''}).")
        self.reload(select=saved.key)
        return saved

    def copy_to_personal(self) -> None:
        if self.current is None:
            return
        if self.current.scope == "builtin" or self.current.scope == "site":
            self.id_edit.setText(self.current.exam_type)
        self.save_template("personal")

    def new_template(self) -> None:
        self.template_list.clearSelection()
        self.current = None
        for w in (self.id_edit, self.title_edit, self.modalities_edit, self.body_parts_edit, self.procedures_edit,
                  self.code_edit):
            w.clear()
        for e in self.section_edits.values():
            e.clear()
        self.id_edit.setFocus()
        self._say("New template: fill in an id and a title, the matching rules and the text, then save.")

    def delete_template(self) -> None:
        if self.current is None:
            return
        try:
            self.library.delete(self.current)
        except TemplateError as exc:
            self._say(str(exc), error=True)
            return
        self._say(f"Deleted “{self.current.title}” ({self.current.scope}).")
        self.current = None
        self.reload()

    # -- macros ----------------------------------------------------------------------------------------------
    def _macro_page(self) -> QWidget:
        self.macro_scope = QComboBox()
        self.macro_scope.addItems(["personal", "site"])
        self.macro_scope.currentTextChanged.connect(lambda _t: self._load_macros())
        self.macro_table = QTableWidget(0, 3)
        self.macro_table.setObjectName("macroTable")
        self.macro_table.setHorizontalHeaderLabels(["Name", "Text", "Modalities"])
        self.macro_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        add = QPushButton("Add")
        remove = QPushButton("Remove")
        self.macro_save = QPushButton("Save macros")
        for b in (add, remove, self.macro_save):
            b.setAutoDefault(False)
        add.clicked.connect(self.add_macro_row)
        remove.clicked.connect(lambda: self.macro_table.removeRow(self.macro_table.currentRow()))
        self.macro_save.clicked.connect(self.save_macros)
        top = QHBoxLayout()
        top.addWidget(QLabel("Macros of:"))
        top.addWidget(self.macro_scope)
        top.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        row.addWidget(self.macro_save)
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addLayout(top)
        lay.addWidget(self.macro_table, 1)
        lay.addWidget(QLabel("Type a macro's name in the report and press Ctrl+Space. Built-in macros are "
                             "used unless a personal or site macro has the same name."))
        lay.addLayout(row)
        return page

    def _load_macros(self) -> None:
        scope = self.macro_scope.currentText()
        self.macro_save.setEnabled(scope == "personal" or self.user.can_manage_users)
        self.macro_table.setRowCount(0)
        try:
            macros = self.macro_library.scope_macros(scope, self.user.username)
        except TemplateError as exc:
            self._say(str(exc), error=True)
            return
        for m in macros:
            self.add_macro_row(m.name, m.text, ", ".join(m.modalities))

    def add_macro_row(self, name: str = "", text: str = "", modalities: str = "") -> None:
        r = self.macro_table.rowCount()
        self.macro_table.insertRow(r)
        for c, value in enumerate((name, text, modalities)):
            self.macro_table.setItem(r, c, QTableWidgetItem(value))
        if not name:
            self.macro_table.setCurrentCell(r, 0)

    def save_macros(self) -> bool:
        scope = self.macro_scope.currentText()
        items = []
        for r in range(self.macro_table.rowCount()):
            cell = [(self.macro_table.item(r, c).text() if self.macro_table.item(r, c) else "") for c in range(3)]
            if not any(x.strip() for x in cell):
                continue
            items.append(Macro(cell[0].strip(), cell[1], tuple(m.upper() for m in _words(cell[2])), scope))
        try:
            self.macro_library.save_scope(items, scope, self.user.username)
        except TemplateError as exc:
            self._say(f"Macros not saved: {exc}", error=True)
            return False
        self._say(f"Saved {len(items)} {scope} macro{'s' if len(items) != 1 else ''}.")
        return True

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color:#b3261e;" if error else "color:#174d17;")
        self.message.setText(text)
