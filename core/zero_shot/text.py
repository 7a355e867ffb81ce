"""The user's text: labels or captions (parsed, tidied, deduplicated), the prompt template, the query."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import InputError
from core.settings import get_settings

PLACEHOLDER = "{}"
DEFAULT_TEMPLATE = "una foto di {}"
""""a photo of {}": the form of clip-italian's own zero-shot templates."""
MAX_LABELS = 64
MAX_TEMPLATE_CHARS = 200


def parse_labels(
    labels: str | Sequence[str] | None, *, lines_only: bool = False, what: str = "label"
) -> tuple[list[str], list[str]]:
    """The labels of a text box (one per line, or separated by commas when there is one line; `lines_only`:
    one per line), whitespace tidied, empty ones dropped, repeats (ignoring case) left out; and notes.
    InputError for none, too many or too much text."""
    limit = get_settings().max_text_chars
    if labels is None:
        labels = ""
    if isinstance(labels, str):
        if len(labels) > MAX_LABELS * limit:
            raise InputError(f"The {what}s are too long: {len(labels)} characters, at most {MAX_LABELS * limit}.")
        parts = labels.splitlines() if lines_only or "\n" in labels.strip() else labels.split(",")
    elif isinstance(labels, Sequence) and all(isinstance(item, str) for item in labels):
        parts = list(labels)
    else:
        raise InputError(f"Give the {what}s as text: one per line{'' if lines_only else ' or separated by commas'}.")
    tidy = [" ".join(part.split()) for part in parts]
    tidy = [part for part in tidy if part]
    example = "un gatto sul divano\nun cane in un prato" if lines_only else "un gatto, un cane, una tazza di caffè"
    if not tidy:
        raise InputError(
            f"Give at least one {what}, one per line{'' if lines_only else ' or separated by commas'}, "
            f"e.g. {example!r}."
        )
    if len(tidy) > MAX_LABELS:
        raise InputError(f"At most {MAX_LABELS} {what}s at once, not {len(tidy)}: keep the ones that matter.")
    notes = []
    kept: dict[str, str] = {}
    repeated = []
    for label in tidy:
        if label.casefold() in kept:
            repeated.append(label)
            continue
        kept[label.casefold()] = label
    if repeated:
        notes.append(f"Left out repeated {what}s (the same ignoring case): {listed(repeated, 5)}.")
    cut = [label for label in kept.values() if len(label) > limit]
    if cut:
        notes.append(f"{len(cut)} {what}(s) longer than {limit} characters were cut to that length.")
    return [label[:limit] for label in kept.values()], notes


def check_template(template: str | None) -> str:
    """A prompt template with "{}" where each label goes; empty means the labels as they are."""
    if template is None:
        return PLACEHOLDER
    if not isinstance(template, str):
        raise InputError("The template must be text with {} where each label goes, e.g. 'una foto di {}'.")
    tidy = " ".join(template.split())
    if not tidy:
        return PLACEHOLDER
    if len(tidy) > MAX_TEMPLATE_CHARS:
        raise InputError(f"The template is too long: {len(tidy)} characters, at most {MAX_TEMPLATE_CHARS}.")
    if PLACEHOLDER not in tidy:
        raise InputError(
            f"The template must contain {{}} where each label goes, e.g. 'una foto di {{}}' (a photo of {{}}); "
            f"{short(tidy)!r} has none."
        )
    return tidy


def check_query(query: str | None) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InputError("Type what to look for, e.g. 'un gatto sul divano' (a cat on the sofa).")
    tidy = " ".join(query.split())
    limit = get_settings().max_text_chars
    if len(tidy) > limit:
        raise InputError(f"The query is too long: {len(tidy)} characters, at most {limit}.")
    return tidy


def short(text: str, length: int = 40) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def listed(texts: Sequence[str], most: int) -> str:
    """The first `most` texts, shortened and quoted, with "…" when there are more."""
    return ", ".join(repr(short(text)) for text in texts[:most]) + (" …" if len(texts) > most else "")


def apply_template(labels: Sequence[str], template: str) -> list[str]:
    return [template.replace(PLACEHOLDER, label) for label in labels]
