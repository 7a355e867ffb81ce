"""The DALL-E discrete VAE: the architecture round trip on the tiny VAE, OpenAI-format pickles read without
running code from them, refusal of pickles that carry code, the download, and the model cache."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core import dalle_vae
from core.download import fetch_dalle_vae
from core.images import load_image
from core.models import ModelCache
from core.safe_pickle import UnsafePickleError, load_pickled_module, state_dict
from core.settings import get_settings, reset_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def tiny_vae() -> dalle_vae.DalleVAE:
    return dalle_vae.load_vae(dalle_vae.ensure_tiny_vae(get_settings()))


def test_tokens_to_pixels_to_tokens_keeps_shapes_and_ranges(tiny_vae: dalle_vae.DalleVAE) -> None:
    view = dalle_vae.tokenizer_view(load_image(ASSETS / "chelsea.jpg"))
    assert view.shape == (1, 3, 112, 112) and float(view.min()) >= 0 and float(view.max()) <= 1
    tokens = tiny_vae.tokens(view)
    assert tokens.shape == (1, 14, 14) and tokens.dtype == torch.int64
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 8192
    assert len(tokens.unique()) > 1  # the tiny encoder still tells patches apart
    pixels = tiny_vae.decode(tokens)
    assert pixels.shape == (1, 3, 112, 112) and pixels.dtype == torch.float32
    assert float(pixels.min()) >= 0 and float(pixels.max()) <= 1 and float(pixels.std()) > 0.01
    again = tiny_vae.tokens(pixels)
    assert again.shape == (1, 14, 14) and int(again.min()) >= 0 and int(again.max()) < 8192
    assert dalle_vae.to_uint8(pixels).shape == (112, 112, 3)


def test_the_pixel_mapping_is_dalles(tiny_vae: dalle_vae.DalleVAE) -> None:
    values = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(dalle_vae.map_pixels(values), torch.tensor([0.1, 0.5, 0.9]))
    assert torch.allclose(
        dalle_vae.unmap_pixels(torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])), torch.tensor([0, 0, 0.5, 1, 1])
    )
    with pytest.raises(ValueError, match="from 0 to 8191"):
        tiny_vae.decode(torch.full((1, 2, 2), 8192))
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny_vae.tokens(torch.zeros(1, 3, 20, 20))


def test_the_architecture_has_the_published_names_and_shapes() -> None:
    n_hid, n_init = 16, 8  # the published 256 and 128 scale every width alike
    encoder = dalle_vae.classes()["Encoder"](n_hid, 2, 8192)
    decoder = dalle_vae.classes()["Decoder"](n_init, n_hid, 2, 8192)
    shapes = {name: tuple(t.shape) for name, t in encoder.state_dict().items()}
    assert shapes["blocks.input.w"] == (n_hid, 3, 7, 7)
    assert shapes["blocks.group_1.block_1.res_path.conv_1.w"] == (n_hid // 4, n_hid, 3, 3)
    assert shapes["blocks.group_1.block_1.res_path.conv_4.w"] == (n_hid, n_hid // 4, 1, 1)
    assert shapes["blocks.group_2.block_1.id_path.w"] == (2 * n_hid, n_hid, 1, 1)
    assert "blocks.group_1.block_1.id_path.w" not in shapes and "blocks.group_4.block_2.res_path.conv_4.b" in shapes
    assert shapes["blocks.output.conv.w"] == (8192, 8 * n_hid, 1, 1)
    assert [name for name, _ in encoder.blocks.named_children()] == [
        "input",
        *(f"group_{g}" for g in range(1, 5)),
        "output",
    ]
    assert encoder.blocks.group_1.block_1.post_gain == 1 / 8**2  # 4 groups x 2 blocks
    shapes = {name: tuple(t.shape) for name, t in decoder.state_dict().items()}
    assert shapes["blocks.input.w"] == (n_init, 8192, 1, 1)
    assert shapes["blocks.group_1.block_1.res_path.conv_1.w"] == (2 * n_hid, n_init, 1, 1)
    assert shapes["blocks.group_1.block_1.res_path.conv_4.w"] == (8 * n_hid, 2 * n_hid, 3, 3)
    assert shapes["blocks.output.conv.w"] == (6, n_hid, 1, 1)
    with torch.no_grad():
        assert encoder(torch.rand(1, 3, 32, 32)).shape == (1, 8192, 4, 4)
        assert decoder(torch.zeros(1, 8192, 4, 4)).shape == (1, 6, 32, 32)


# --- OpenAI's file format --------------------------------------------------------------------------


@contextlib.contextmanager
def published_classes() -> Iterator[dict[str, type]]:
    """Classes named as in OpenAI's pickles (dall_e.encoder.Encoder, dall_e.utils.Conv2d, ...), made from
    the project's architecture and importable only inside this block."""
    ours = dalle_vae.classes()
    made = {
        "dall_e.encoder.Encoder": ours["Encoder"],
        "dall_e.encoder.EncoderBlock": ours["ResidualBlock"],
        "dall_e.decoder.Decoder": ours["Decoder"],
        "dall_e.decoder.DecoderBlock": ours["ResidualBlock"],
        "dall_e.utils.Conv2d": ours["Conv"],
    }
    modules = {name: types.ModuleType(name) for name in ("dall_e", "dall_e.encoder", "dall_e.decoder", "dall_e.utils")}
    classes = {}
    for full, base in made.items():
        module, name = full.rsplit(".", 1)
        cls = type(name, (base,), {"__module__": module, "__qualname__": name})
        setattr(modules[module], name, cls)
        classes[full] = cls
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield classes
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def as_published(model: torch.nn.Module, kind: str, classes: dict[str, type]) -> torch.nn.Module:
    ours = dalle_vae.classes()
    model.__class__ = classes[f"dall_e.{kind}.{kind.capitalize()}"]
    for module in model.modules():
        if type(module) is ours["Conv"]:
            module.__class__ = classes["dall_e.utils.Conv2d"]
        elif type(module) is ours["ResidualBlock"]:
            module.__class__ = classes[f"dall_e.{kind}.{kind.capitalize()}Block"]
    return model


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny VAE saved as OpenAI saved theirs (whole pickled modules), in the zip and the legacy torch
    formats, each beside the outputs it must give."""
    folders = {}
    tiny = dalle_vae.read_weights(dalle_vae.ensure_tiny_vae(get_settings()))
    for layout in ("zip", "legacy"):
        folder = tmp_path_factory.mktemp(f"dall-e-{layout}")
        encoder, decoder = dalle_vae.build_encoder(tiny[0]), dalle_vae.build_decoder(tiny[1])
        with published_classes() as classes:
            for model, kind in ((encoder, "encoder"), (decoder, "decoder")):
                torch.save(
                    as_published(model, kind, classes),
                    folder / f"{kind}.pkl",
                    _use_new_zipfile_serialization=layout == "zip",
                )
        folders[layout] = folder
    assert "dall_e" not in sys.modules
    return folders


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_openai_format_files_load_by_name_into_our_architecture(
    published: dict[str, Path], tiny_vae: dalle_vae.DalleVAE, layout: str
) -> None:
    root = load_pickled_module(published[layout] / "encoder.pkl")
    assert root.pickled_class == "dall_e.encoder.Encoder"
    assert root.state["_modules"]["blocks"].pickled_class == "torch.nn.modules.container.Sequential"
    weights = state_dict(root)
    assert weights.keys() == tiny_vae.encoder.state_dict().keys()
    vae = dalle_vae.load_vae(published[layout])
    assert vae.source == "OpenAI's published weights"
    view = dalle_vae.tokenizer_view(load_image(ASSETS / "coffee.jpg"))
    assert torch.equal(vae.logits(view), tiny_vae.logits(view))
    tokens = tiny_vae.tokens(view)
    assert torch.equal(vae.decode(tokens), tiny_vae.decode(tokens))
    assert "dall_e" not in sys.modules


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_carries_code_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    in_torch_file = tmp_path / "torch.pkl"
    torch.save({"blocks": torch.zeros(2), "extra": RunsCode(marker)}, in_torch_file)
    for path in (plain, in_torch_file):
        with pytest.raises(UnsafePickleError, match=r"posix\.system|os\.system|nt\.system"):
            load_pickled_module(path)
    assert not marker.exists()
    # the same through the app's loader: the folder's encoder.pkl carries code
    folder = tmp_path / "vae"
    folder.mkdir()
    for name in dalle_vae.PICKLED:
        (folder / name).write_bytes(in_torch_file.read_bytes())
    with pytest.raises(UnsafePickleError, match="Nothing from it was run"):
        dalle_vae.load_vae(folder)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["builtins.eval", "subprocess.Popen", "torch.load", "dall_e.encoder.Unknown"])
def test_only_tensors_and_the_published_module_classes_resolve(tmp_path: Path, name: str) -> None:
    module, attribute = name.rsplit(".", 1)
    path = tmp_path / "global.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{attribute}\n".encode() + b"q\x00.")
    with pytest.raises(UnsafePickleError, match="Refused"):
        load_pickled_module(path)


def test_files_that_are_not_modules_are_refused_clearly(tmp_path: Path) -> None:
    tensor_only = tmp_path / "tensor.pkl"
    torch.save({"w": torch.zeros(1)}, tensor_only)
    with pytest.raises(ValueError, match="not a pickled module"):
        load_pickled_module(tensor_only)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="not a readable torch file"):
        load_pickled_module(garbage)


# --- download and the cache ------------------------------------------------------------------------


def test_download_writes_both_files_whole_and_checks_them(published: dict[str, Path], tmp_path: Path) -> None:
    asked = []

    def fetch(url: str) -> io.BytesIO:
        asked.append(url)
        return io.BytesIO((published["zip"] / url.rsplit("/", 1)[1]).read_bytes())

    folder = dalle_vae.download(tmp_path / "dall-e", fetch)
    assert asked == list(dalle_vae.URLS.values())
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.pkl", "encoder.pkl"]
    assert dalle_vae.files_present(folder) == "pickled"

    def broken(url: str) -> io.BytesIO:
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        dalle_vae.download(tmp_path / "broken", broken)
    assert list((tmp_path / "broken").iterdir()) == []


def test_download_command_reports_a_failure(
    fresh_settings: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_settings.setenv("PLAYGROUND_DALLE_DIR", str(tmp_path / "dall-e"))

    def offline(url: str) -> io.BytesIO:
        raise OSError("no network")

    assert fetch_dalle_vae(tiny=False, fetch=offline) == 1
    assert "FAIL  dall-e-dvae" in capsys.readouterr().err
    assert list((tmp_path / "dall-e").iterdir()) == []


def test_the_vae_shares_the_model_cache_and_is_absent_without_files(
    fresh_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = ModelCache(10**12, loader=lambda spec: pytest.fail("no registry model should load"))
    vae, load_ms = dalle_vae.get_vae(cache)
    assert vae is not None and load_ms is not None and vae.nbytes > 0
    assert cache.loaded_keys() == [dalle_vae.CACHE_KEY] and cache.total_bytes() == vae.nbytes
    again, second_ms = dalle_vae.get_vae(cache)
    assert again is vae and second_ms is None
    with pytest.raises(ValueError, match="registry key"):
        cache.get_other("beit-base-224", lambda: vae)

    fresh_settings.setenv("PLAYGROUND_TINY", "0")
    fresh_settings.setenv("PLAYGROUND_DALLE_DIR", str(tmp_path / "empty"))
    reset_settings()
    assert dalle_vae.get_vae(ModelCache(10**12)) == (None, None)
