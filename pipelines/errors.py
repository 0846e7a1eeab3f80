"""The pipeline error tree: an upload refused by the ingestion policy, with a stable ``code``."""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    """Every rule an uploaded SVG or zip batch can break (the public catalogue, docs/media.md)."""

    SVG_NOT_SVG = "svg_not_svg"
    SVG_DOCTYPE = "svg_doctype"
    SVG_SCRIPT = "svg_script"
    SVG_EVENT_HANDLER = "svg_event_handler"
    SVG_FOREIGN_OBJECT = "svg_foreign_object"
    SVG_EXTERNAL_REFERENCE = "svg_external_reference"
    SVG_TOO_LARGE = "svg_too_large"
    SVG_TOO_DEEP = "svg_too_deep"
    SVG_TOO_MANY_ELEMENTS = "svg_too_many_elements"
    SVG_DIMENSIONS = "svg_dimensions"
    SVG_TOO_COSTLY = "svg_too_costly"
    ZIP_INVALID = "zip_invalid"
    ZIP_TOO_LARGE = "zip_too_large"
    ZIP_TOO_MANY_ENTRIES = "zip_too_many_entries"
    ZIP_BOMB = "zip_bomb"
    ZIP_PATH_TRAVERSAL = "zip_path_traversal"
    ZIP_ABSOLUTE_PATH = "zip_absolute_path"
    ZIP_SYMLINK = "zip_symlink"
    ZIP_DUPLICATE_NAME = "zip_duplicate_name"
    ZIP_ENCRYPTED = "zip_encrypted"
    MANIFEST_MISSING = "import_manifest_missing"
    MANIFEST_INVALID = "import_manifest_invalid"
    IMPORT_FILE_MISSING = "import_file_missing"
    IMPORT_FILE_UNLISTED = "import_file_unlisted"
    IMPORT_STYLE_MISMATCH = "import_style_mismatch"
    IMPORT_ZIP_MISSING = "import_zip_missing"
    UPLOAD_MISSING = "upload_missing"
    UPLOAD_UNSUPPORTED_MEDIA_TYPE = "upload_unsupported_media_type"


class MediaRefused(Exception):
    """An upload broke an ingestion rule; nothing was stored or appended.

    ``code`` names the rule (stable, for clients); ``detail`` is for humans. The API answers 422.
    """

    def __init__(self, code: RefusalCode, detail: str) -> None:
        super().__init__(detail)
        self.code: str = code.value
        self.detail = detail


class SvgRefused(MediaRefused):
    """The SVG breaks the SVG policy (pipelines/svg_policy.py)."""


class ZipRefused(MediaRefused):
    """The zip batch as a whole is refused (bomb, traversal, symlink, bad manifest...)."""
