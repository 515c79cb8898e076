"""The LLM application: a registered model served by vLLM through ``ray.serve.llm``.

``serve run serve_apps/llm.yaml`` (or ``wow-ray serve``) calls :func:`build_llm_app`. It reuses
``ray.serve.llm.build_openai_app`` whole and adds only what the registry needs:

- the base model's folder comes from the registry, and its files are checked against their
  recorded sha256 first, so a damaged model is reported instead of served;
- LoRA adapters registered over that model are served by name (``<model>:<adapter>`` or
  ``<model>:<adapter>:vN``) without restarting it: Ray's own loader only reads adapters from
  s3/gs/azure, so :class:`RegistryLoraLoader` reads them from our storage instead;
- requests are checked before they reach the engine (non-empty messages, max_tokens within the
  context), so bad input gets a 400 that says what is wrong;
- a replica warms up (a few tokens, streamed and not) before it reports ready.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request, Response
from ray import serve
from ray.llm._internal.common.models import global_id_manager
from ray.llm._internal.common.utils.lora_utils import get_base_model_id, get_lora_id
from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    OpenAIHTTPException,
)
from ray.llm._internal.serve.core.ingress.ingress import OpenAiIngress
from ray.llm._internal.serve.utils.lora_serve_utils import LoraModelLoader
from ray.serve.llm import LLMConfig, LLMServer, LLMServingArgs, build_openai_app

from wow_ray.config import WowSettings, load_settings
from wow_ray.llm.engine import llm_config_for
from wow_ray.llm.wire import LLMRequestError, completion_chunks
from wow_ray.registry import EntryKind, Registry, resolve_model

_ADAPTER_CACHE_S = 2.0
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")


class RegistryLoraLoader(LoraModelLoader):
    """Loads LoRA adapters for a replica from the registry, after checking their hashes."""

    def __init__(self, download_timeout_s: float | None = None, max_tries: int = 1) -> None:
        super().__init__(download_timeout_s=download_timeout_s, max_tries=max_tries)
        self._registry = Registry(load_settings().storage_path)

    async def load_model_from_config(
        self, lora_model_id: str, llm_config: LLMConfig
    ) -> DiskMultiplexConfig:
        if lora_model_id in self.disk_cache:
            return self.disk_cache[lora_model_id]
        entry = self._registry.get(EntryKind.ADAPTER, get_lora_id(lora_model_id))
        self._registry.verify(entry)
        config = DiskMultiplexConfig(
            model_id=lora_model_id,
            max_total_tokens=None,
            local_path=str(self._registry.local_dir(entry)),
            lora_assigned_int_id=global_id_manager.next(),
        )
        self.disk_cache[lora_model_id] = config
        return config


class RegistryLLMServer(LLMServer):
    """Ray's LLMServer with adapters loaded from the registry."""

    async def __init__(
        self, llm_config: LLMConfig, *, engine_cls: Any = None, model_downloader: Any = None
    ):
        self._lora_loads: dict[str, asyncio.Lock] = {}
        await super().__init__(
            llm_config,
            engine_cls=engine_cls,
            model_downloader=model_downloader or RegistryLoraLoader,
        )
        if load_settings().engine.warm_up:
            await self.warm_up()

    async def warm_up(self) -> float:
        """A few tokens through the whole path a request takes (vLLM's request types, the
        engine's first steps), inside the constructor: Serve reports the replica ready only
        after it, so the first customer does not pay for it. Returns the seconds it took."""
        started = time.perf_counter()
        body = {"model": self._llm_config.model_id, "max_tokens": 4, "temperature": 0.0,
                "messages": [{"role": "user", "content": "Hello"}]}
        for stream in (False, True):
            async for _ in self.chat_plain({**body, "stream": stream}):
                pass
        return time.perf_counter() - started

    async def _maybe_resolve_lora_from_multiplex(self) -> None:
        """Ray's, one load per adapter at a time: concurrent first requests for a new adapter
        (the loop's candidate, just registered) all found it unloaded and asked vLLM to load
        it; all but the first failed with "has already been loaded" (a 500)."""
        lock = self._lora_loads.setdefault(serve.get_multiplexed_model_id(), asyncio.Lock())
        async with lock:
            await super()._maybe_resolve_lora_from_multiplex()

    async def chat_plain(self, body: dict[str, Any]) -> AsyncGenerator[dict | list[dict], None]:
        """``chat`` for callers that do not import vLLM (the dialogue agents' Serve-handle
        client): an OpenAI request as a plain dict in; out, the response as a dict or, when
        streaming, lists of ``chat.completion.chunk`` dicts; an error as an OpenAI error object.
        vLLM streams event text (``data: {...}``): it is read here, once, so callers get chunks.
        Importing vLLM's request types costs a replica about 0.5 GB and 10 s; this keeps them
        here."""
        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValueError as exc:
            yield {"error": {"code": 400, "message": str(exc)[:500]}}
            return
        async for item in await self.chat(request):
            errors = [x for x in (item if isinstance(item, list) else [item])
                      if isinstance(x, ErrorResponse)]
            if errors:
                yield {"error": errors[0].error.model_dump()}
                return
            if not isinstance(item, list):
                yield item.model_dump()
                continue
            try:
                yield completion_chunks("".join(item))
            except LLMRequestError as exc:  # an error the engine sent inside the stream
                yield {"error": {"code": exc.status_code, "message": exc.message}}
                return


def _bad_request(message: str, status_code: int = 400) -> OpenAIHTTPException:
    kind = "NotFoundError" if status_code == 404 else "BadRequestError"
    return OpenAIHTTPException(message=message, status_code=status_code, type=kind)


class RegistryOpenAiIngress(OpenAiIngress):
    """Ray's OpenAI ingress that knows the registry's adapters and rejects bad requests early."""

    def __init__(
        self,
        llm_deployments: dict,
        model_cards: dict,
        lora_paths: dict | None = None,
        *,
        storage_path: str,
        max_model_len: int,
        default_max_tokens: int,
    ):
        super().__init__(llm_deployments, model_cards, lora_paths=lora_paths)
        self._registry = Registry(storage_path)
        self._max_model_len = max_model_len
        self._default_max_tokens = min(default_max_tokens, max_model_len)
        self._adapters: dict[str, str] = {}  # adapter name (and name:vN) -> its newest ref
        self._adapters_read_at = 0.0

    def _adapter_refs(self, base_model_id: str) -> dict[str, str]:
        """Registered adapters over ``base_model_id``, re-read at most every couple of seconds."""
        if time.monotonic() - self._adapters_read_at > _ADAPTER_CACHE_S:
            refs: dict[str, str] = {}
            for entry in self._registry.entries(EntryKind.ADAPTER):
                if entry.base_model and entry.base_model.split(":")[0] == base_model_id:
                    refs[entry.name] = entry.ref  # entries are oldest first: the newest wins
                    refs[entry.ref] = entry.ref
            self._adapters, self._adapters_read_at = refs, time.monotonic()
        return self._adapters

    async def _get_model_id(self, model: str | None) -> str:
        model = await super()._get_model_id(model)
        base = get_base_model_id(model)
        if model == base:
            return model
        adapter = get_lora_id(model).removesuffix(":latest")
        ref = self._adapter_refs(base).get(adapter)
        if ref is None:
            raise _bad_request(
                f"model {model!r}: no LoRA adapter {adapter!r} over {base!r} is registered "
                f"(registered: {sorted(k for k in self._adapters if ':' not in k) or 'none'})",
                404,
            )
        # Pin the version, so a later registration reaches new requests, never a cached old one.
        return f"{base}:{ref}"

    async def _checked(self, body: ChatCompletionRequest | CompletionRequest) -> None:
        """Reject what the engine would choke on, and pin an adapter's version in ``body.model``.

        vLLM matches ``body.model`` against the adapter it loaded, so the version that
        ``_get_model_id`` resolved has to be written back into the request.
        """
        if isinstance(body, ChatCompletionRequest):
            if not body.messages:
                raise _bad_request("'messages' must contain at least one message")
            for i, message in enumerate(body.messages):
                role = message.get("role") if isinstance(message, dict) else None
                if role not in CHAT_ROLES:  # vLLM would render any role into the prompt
                    raise _bad_request(
                        f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}, got {role!r}"
                    )
        limit = getattr(body, "max_completion_tokens", None) or body.max_tokens
        if limit is None:
            body.max_tokens = self._default_max_tokens
        elif not 1 <= limit <= self._max_model_len:
            raise _bad_request(
                f"'max_tokens' must be between 1 and the context length {self._max_model_len}, "
                f"got {limit}"
            )
        body.model = await self._get_model_id(body.model)

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        await self._checked(body)
        return await super().chat(body, request)

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        await self._checked(body)
        return await super().completions(body, request)

    async def model(self, model_id: str) -> ModelCard | None:
        card = await super().model(model_id)
        if card is not None or ":" not in model_id:
            return card
        try:
            resolved = await self._get_model_id(model_id)
        except OpenAIHTTPException:
            return None
        base_card = self._model_cards[get_base_model_id(resolved)]
        return ModelCard(
            id=resolved, object="model", owned_by=base_card.owned_by, permission=[], metadata={}
        )

    async def models(self) -> ModelList:
        listed = await super().models()
        for base in list(self._model_cards):
            for name, ref in sorted(self._adapter_refs(base).items()):
                if name == ref:  # list each version once, by its full id
                    card = await self.model(f"{base}:{ref}")
                    if card is not None:
                        listed.data.append(card)
        return listed


def build_llm_serving_args(settings: WowSettings, *, verify: bool = True) -> LLMServingArgs:
    """The validated ``ray.serve.llm`` arguments for serving ``settings.model``."""
    registry = Registry(settings.storage_path)
    entry = resolve_model(registry, settings.model)
    if verify:
        registry.verify(entry)
    llm_config = llm_config_for(settings, registry, entry, server_cls=RegistryLLMServer)
    return LLMServingArgs(
        llm_configs=[llm_config],
        ingress_cls_config={
            "ingress_cls": RegistryOpenAiIngress,
            "ingress_extra_kwargs": {
                "storage_path": settings.storage_path,
                "max_model_len": settings.engine.max_model_len,
                "default_max_tokens": settings.serve.default_max_tokens,
            },
        },
        ingress_deployment_config={"ray_actor_options": {"num_cpus": settings.serve.ingress_cpus}},
    )


def build_llm_app(args: dict[str, Any] | None = None) -> serve.Application:
    """Serve builder: ``args`` are WowSettings fields (YAML ``args:``), over env and config file."""
    args = dict(args or {})
    config_file = args.pop("config_file", None)
    settings = load_settings(config_file, **args)
    return build_openai_app(build_llm_serving_args(settings))
