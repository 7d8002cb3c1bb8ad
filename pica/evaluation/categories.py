"""OK-VQA's knowledge categories: codes, names and how they are shown."""

from __future__ import annotations

# OK-VQA's knowledge categories: the LXMERT files' ``class`` numbers and the official
# annotations' ``question_type`` words name the same eleven categories.
OKVQA_CATEGORIES = {
    "1": "Vehicles and Transportation", "2": "Brands, Companies and Products",
    "3": "Objects, Material and Clothing", "4": "Sports and Recreation", "5": "Cooking and Food",
    "6": "Geography, History, Language and Culture", "7": "People and Everyday Life",
    "8": "Plants and Animals", "9": "Science and Technology", "10": "Weather and Climate",
    "0": "Other",
}
_CATEGORY_WORDS = dict(zip(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                            "ten"], map(str, range(11))), other="0")


def category_name(code: str) -> str | None:
    """The OK-VQA name of a category code (``"8"`` or ``"eight"``), or None for other codes."""
    key = str(code).strip().lower()
    return OKVQA_CATEGORIES.get(_CATEGORY_WORDS.get(key, key))


def category_label(code: str, name: str | None) -> str:
    """A category for display: ``"10 Weather and Climate"``, or just the code when ``name`` is empty.

    Args:
        code: The category code as it appears in the data (``"10"``).
        name: Its name, e.g. from :func:`category_name` or a summary's ``per_category`` entry.
    """
    return f"{code} {name}" if name else str(code)
