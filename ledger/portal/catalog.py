"""The messages the portal shows, as Babel extracts them from its Python
code (`_`, `N_`, `gettext`) and Jinja2 templates: what every catalog must
translate (`tests/test_portal_units.py` checks each .po against it; after
changing a message, `python -m ledger.portal.catalog` updates the .po files,
keeping their translations, and lists what is new)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir

from . import i18n

HERE = Path(__file__).parent
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}
KEYWORDS = {"_": None, "N_": None, "gettext": None}


def template() -> Catalog:
    """Every message of the portal (a POT catalog)."""
    catalog = Catalog(project="partner-ledger portal", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            HERE, METHODS, OPTIONS, KEYWORDS, strip_comment_tags=True):
        if filename.endswith("catalog.py"):
            continue
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update() -> None:
    from babel.messages.pofile import read_po, write_po

    pot = template()
    for lang in i18n.LANGUAGES[1:]:
        path = i18n.po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with open(path, "rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="partner-ledger portal", charset="utf-8")
        catalog.update(pot, no_fuzzy_matching=True)
        catalog.msgid_bugs_address = "the partner-ledger issue tracker"
        with open(path, "wb") as f:
            write_po(f, catalog, width=100, omit_header=False, no_location=True, sort_output=True,
                     ignore_obsolete=True)
        missing = [m.id for m in catalog if m.id and not m.string]
        print(f"{lang}: {len(missing)} untranslated")


if __name__ == "__main__":
    update()
