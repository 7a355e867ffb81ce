"""Zero-shot labels and search by text (core/zero_shot.py) on the tiny clip-italian: parity with the
processor + model called directly, the image-embedding cache (vision-encoder calls counted), ranking,
and every bad input of the issue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from core import zero_shot as zs
from core.errors import InputError
from core.images import ImageInputError, load_image
from core.models import LoadedModel, get_cache

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NAMES = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
LABELS = ["un gatto", "un cane", "una tazza di caffè", "un astronauta"]


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return get_cache().get(zs.DEFAULT_MODEL)[0]


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [load_image(ASSETS / name) for name in NAMES]


@pytest.fixture
def embeddings() -> zs.EmbeddingCache:
    return zs.EmbeddingCache()


class Calls:
    """Counts forward calls of a submodule (the vision or the text encoder)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self._handle = module.register_forward_hook(self._count)

    def _count(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.calls += 1

    def close(self) -> None:
        self._handle.remove()


@pytest.fixture
def vision_calls(loaded: LoadedModel) -> Iterator[Calls]:
    calls = Calls(loaded.model.vision_model)
    yield calls
    calls.close()


@pytest.fixture
def text_calls(loaded: LoadedModel) -> Iterator[Calls]:
    calls = Calls(loaded.model.text_model)
    yield calls
    calls.close()


def direct(loaded: LoadedModel, images: list[Image.Image], texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain transformers way: processor(text, images) -> model -> logits_per_image; (probabilities over
    the texts, cosines), both (images, texts)."""
    inputs = loaded.processor(text=texts, images=images, padding=True, return_tensors="pt")
    with torch.inference_mode():
        outputs = loaded.model(**inputs)
    scale = loaded.model.logit_scale.detach().exp()
    return outputs.logits_per_image.softmax(dim=-1), outputs.logits_per_image / scale


# --- parity ------------------------------------------------------------------------------------------------


def test_probabilities_and_cosines_equal_the_processor_and_model_called_directly(
    loaded: LoadedModel, images: list[Image.Image], embeddings: zs.EmbeddingCache
) -> None:
    result = zs.zero_shot(images[0], ", ".join(LABELS), "una foto di {}", embeddings=embeddings)
    probabilities, cosines = direct(loaded, images[:1], [f"una foto di {label}" for label in LABELS])
    by_label = {score.label: score for score in result.scores}
    assert set(by_label) == set(LABELS)
    for index, label in enumerate(LABELS):
        assert by_label[label].prompt == f"una foto di {label}"
        assert by_label[label].probability == pytest.approx(float(probabilities[0, index]), abs=1e-5)
        assert by_label[label].cosine == pytest.approx(float(cosines[0, index]), abs=1e-5)
    assert [s.probability for s in result.scores] == sorted((s.probability for s in result.scores), reverse=True)
    assert sum(s.probability for s in result.scores) == pytest.approx(1.0, abs=1e-6)
    assert result.model.logit_scale == pytest.approx(float(loaded.model.logit_scale.detach().exp()))
    assert result.model.logit_scale == pytest.approx(torch.e, abs=1e-6)  # clip-italian's logit_scale 1.0, kept
    assert result.model.text_max_tokens == 96


def test_search_ranks_photos_as_the_direct_computation(
    loaded: LoadedModel, images: list[Image.Image], embeddings: zs.EmbeddingCache
) -> None:
    result = zs.search_images(images, "un gatto sul divano", top_k=3, embeddings=embeddings)
    _, cosines = direct(loaded, images, ["un gatto sul divano"])
    expected_order = sorted(range(len(images)), key=lambda i: -float(cosines[i, 0]))[:3]
    assert [m.index for m in result.matches] == expected_order
    assert [m.rank for m in result.matches] == [1, 2, 3]
    over_photos = (cosines[:, 0] * loaded.model.logit_scale.detach().exp()).softmax(dim=0)
    for match in result.matches:
        assert match.cosine == pytest.approx(float(cosines[match.index, 0]), abs=1e-5)
        assert match.probability == pytest.approx(float(over_photos[match.index]), abs=1e-5)
    assert result.count == 4 and all(m.name == f"image {m.index + 1}" for m in result.matches)


def test_several_photos_in_one_batch_equal_each_alone(images: list[Image.Image]) -> None:
    batch = zs.classify_photos(images, LABELS, embeddings=zs.EmbeddingCache())
    for image, scores in zip(images, batch.scores, strict=True):
        alone = zs.zero_shot(image, LABELS, embeddings=zs.EmbeddingCache()).scores
        assert [s.label for s in scores] == [s.label for s in alone]
        for ours, single in zip(scores, alone, strict=True):
            assert ours.cosine == pytest.approx(single.cosine, abs=1e-5)


def test_rank_captions_uses_each_line_as_it_is(loaded: LoadedModel, images: list[Image.Image]) -> None:
    captions = ["un gatto, sdraiato su una coperta", "una tazza di caffè"]
    result = zs.rank_captions(images[0], "\n".join(captions), embeddings=zs.EmbeddingCache())
    assert {s.label for s in result.scores} == set(captions) and all(s.prompt == s.label for s in result.scores)
    probabilities, _ = direct(loaded, images[:1], captions)
    top = captions[int(probabilities[0].argmax())]
    assert result.scores[0].label == top


# --- the image-embedding cache -----------------------------------------------------------------------------


def test_a_second_query_over_the_same_photos_only_runs_the_text_encoder(
    images: list[Image.Image], embeddings: zs.EmbeddingCache, vision_calls: Calls, text_calls: Calls
) -> None:
    photos = [zs.photo_from_file(ASSETS / name) for name in NAMES]
    first = zs.search_images(photos, "un gatto", top_k=4, embeddings=embeddings)
    assert vision_calls.calls == 1  # four photos, one batch
    assert (first.timings.images_computed, first.timings.images_cached) == (4, 0)
    assert first.timings.image_encoder > 0

    second = zs.search_images(photos, "una tazza di caffè", top_k=4, embeddings=embeddings)
    assert vision_calls.calls == 1, "the image encoder ran again for cached photos"
    assert text_calls.calls == 2
    assert (second.timings.images_computed, second.timings.images_cached) == (0, 4)
    assert second.timings.image_encoder == 0.0
    assert second.to_dict()["embeddings"] == {"computed": 0, "cached": 4}

    # the same photo, uploaded again as another file with the same bytes, or as labels: still cached
    labels = zs.zero_shot(zs.photo_from_file(ASSETS / NAMES[0]), LABELS, embeddings=embeddings)
    assert vision_calls.calls == 1 and labels.to_dict()["image_embedding"] == "cached"
    # cached and computed embeddings give the same answer
    fresh = zs.search_images(photos, "una tazza di caffè", top_k=4, embeddings=zs.EmbeddingCache())
    assert [m.index for m in fresh.matches] == [m.index for m in second.matches]
    assert [m.cosine for m in fresh.matches] == pytest.approx([m.cosine for m in second.matches], abs=1e-6)


def test_photos_are_keyed_by_content(images: list[Image.Image], tmp_path: Path, vision_calls: Calls) -> None:
    copy = tmp_path / "same-bytes.jpg"
    copy.write_bytes((ASSETS / NAMES[0]).read_bytes())
    assert zs.photo_from_file(copy).key == zs.photo_from_file(ASSETS / NAMES[0]).key
    assert zs.photo_from_file(ASSETS / NAMES[1]).key != zs.photo_from_file(ASSETS / NAMES[0]).key
    assert zs.photo_from_image(images[0]).key == zs.photo_from_image(images[0].copy()).key
    assert zs.photo_from_image(images[0]).key != zs.photo_from_image(images[0].rotate(90)).key
    # one photo twice in a request: encoded once
    result = zs.search_images([images[0], images[1], images[0].copy()], "un gatto", embeddings=zs.EmbeddingCache())
    assert result.timings.images_computed == 2 and result.count == 3 and vision_calls.calls == 1


def test_the_embedding_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    vector = torch.zeros(512)  # 2 KiB
    cache = zs.EmbeddingCache(max_bytes=3 * 2048)
    for name in "abc":
        cache.put(("m", name), vector.clone())
    assert cache.get(("m", "a")) is not None  # "a" is now the most recently used
    cache.put(("m", "d"), vector.clone())
    assert len(cache) == 3 and cache.nbytes == 3 * 2048
    assert cache.get(("m", "b")) is None and cache.get(("m", "a")) is not None and cache.get(("m", "d")) is not None
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


# --- user text ----------------------------------------------------------------------------------------------


def test_labels_one_per_line_or_comma_separated() -> None:
    assert zs.parse_labels("un gatto, un cane ,, una  tazza ") == (["un gatto", "un cane", "una tazza"], [])
    assert zs.parse_labels("gatto soriano, tigrato\n\n  cane\n") == (["gatto soriano, tigrato", "cane"], [])
    assert zs.parse_labels(["un gatto", " un cane "]) == (["un gatto", "un cane"], [])
    assert zs.parse_labels("un gatto, un cane", lines_only=True) == (["un gatto, un cane"], [])


def test_repeated_labels_are_left_out_with_a_note() -> None:
    labels, notes = zs.parse_labels("gatto, cane, Gatto, gatto")
    assert labels == ["gatto", "cane"]
    assert notes == ["Left out repeated labels (the same ignoring case): 'Gatto', 'gatto'."]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("", "Give at least one label"),
        (" , ,\n ", "Give at least one label"),
        (None, "Give at least one label"),
        (", ".join(f"etichetta {n}" for n in range(300)), "At most 64 labels at once, not 300"),
        ("x" * 200_000, "too long"),
        ([1, 2], "as text"),
    ],
)
def test_bad_label_lists_are_refused(labels: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        zs.parse_labels(labels)


def test_templates() -> None:
    assert zs.check_template("una foto di {}") == "una foto di {}"
    assert zs.check_template("  una   foto di {} ") == "una foto di {}"
    assert zs.check_template("") == zs.check_template(None) == "{}"
    assert zs.apply_template(["un gatto"], "{} e ancora {}") == ["un gatto e ancora un gatto"]
    assert zs.apply_template(["un gatto"], "{x} {}") == ["{x} un gatto"]  # other braces are text
    with pytest.raises(InputError, match=r"must contain \{\} where each label goes.*'una foto' has none"):
        zs.check_template("una foto")
    with pytest.raises(InputError, match="too long"):
        zs.check_template("{}" + "x" * 300)


def test_queries() -> None:
    assert zs.check_query("  un gatto  sul divano ") == "un gatto sul divano"
    for empty in ["", "   ", None]:
        with pytest.raises(InputError, match="Type what to look for"):
            zs.check_query(empty)
    with pytest.raises(InputError, match="The query is too long"):
        zs.check_query("gatto " * 1000)


def test_one_label_has_probability_one_and_a_note(images: list[Image.Image]) -> None:
    result = zs.zero_shot(images[0], "un gatto", embeddings=zs.EmbeddingCache())
    assert len(result.scores) == 1 and result.scores[0].probability == 1.0
    assert -1.0 <= result.scores[0].cosine <= 1.0
    assert any("softmax over a single label means nothing" in note for note in result.notes)


def test_a_long_label_is_cut_to_what_the_text_encoder_reads(loaded: LoadedModel, images: list[Image.Image]) -> None:
    long_label = " ".join(["un gatto grigio sdraiato sul divano"] * 40)
    result = zs.zero_shot(images[0], [long_label, "un cane"], "{}", embeddings=zs.EmbeddingCache())
    assert any("reads at most 96 tokens" in note for note in result.notes)
    inputs = loaded.processor(
        text=[long_label, "un cane"],
        images=images[:1],
        padding=True,
        truncation=True,
        max_length=96,
        return_tensors="pt",
    )
    assert inputs["input_ids"].shape[1] == 96
    with torch.inference_mode():
        expected = loaded.model(**inputs).logits_per_image[0] / loaded.model.logit_scale.detach().exp()
    by_label = {s.label: s.cosine for s in result.scores}
    assert by_label[long_label] == pytest.approx(float(expected[0]), abs=1e-5)


def test_non_latin_text_is_read_and_unknown_characters_are_said(images: list[Image.Image]) -> None:
    result = zs.zero_shot(images[0], "猫, кошка, un gatto", embeddings=zs.EmbeddingCache())
    assert {s.label for s in result.scores} == {"猫", "кошка", "un gatto"}
    assert all(torch.isfinite(torch.tensor([s.probability, s.cosine])).all() for s in result.scores)
    note = next(note for note in result.notes if "does not know" in note)
    assert "'猫'" in note and "'кошка'" in note and "'un gatto'" not in note and "[UNK]" in note


def test_bad_photos_get_clear_messages(tmp_path: Path, images: list[Image.Image]) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageInputError, match=r"Image 2 \(notes.png\): .*not an image in a supported format"):
        zs.search_images(
            [zs.photo_from_file(ASSETS / NAMES[0]), zs.photo_from_file(text)], "gatto", embeddings=zs.EmbeddingCache()
        )
    with pytest.raises(ImageInputError, match="not an image in a supported format"):
        zs.zero_shot(zs.photo_from_file(text), LABELS, embeddings=zs.EmbeddingCache())
    with pytest.raises(ImageInputError, match="The file is empty"):
        zs.photo_from_file(empty)
    with pytest.raises(ImageInputError, match="No image was given"):
        zs.photo_from_file(None)
    with pytest.raises(ImageInputError, match="could not be found"):
        zs.photo_from_file(tmp_path / "gone.jpg")
    with pytest.raises(InputError, match="Add at least one photo"):
        zs.search_images([], "gatto")
    with pytest.raises(InputError, match="at most 32 photos at once, not 33"):
        zs.search_images([images[0]] * 33, "gatto")
    with pytest.raises(InputError, match="Top-k must be from 1 to 32"):
        zs.search_images(images, "gatto", top_k=0)


def test_an_unknown_model_is_refused(images: list[Image.Image]) -> None:
    with pytest.raises(InputError, match="Unknown model 'levit-128S'"):
        zs.zero_shot(images[0], LABELS, model="levit-128S")
