"""``ModelFleet``: many named models served by one process, loaded on first use.

Each loaded model is the single-model machinery instantiated once more: its own
``ServiceRuntime`` (settings pointed at the model's directory, a cache prefix naming the
model), ``DataPlane`` and ``StreamPlane`` (built by the app's ``PlaneFactory``, so every
hook and limit is the same as ``default``'s), over a stream store of its own (a stream is
bound to its model). ``default`` is the app's own runtime: always loaded, never evicted::

    async with fleet.lease("pumps") as served:          # loads it on first use
        batch = await served.dataplane.predict(rows)

Loading runs in a worker thread; concurrent first requests share one load. Named models
are kept least recently used first and unloaded, idle ones only, while their sizes
(``_model_bytes``) add up to more than ``model_memory_mb``: a model leased by a request
in flight is never unloaded under it (a lease count, not a lock, so requests never wait
for each other).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np

from anomaly_api import registry
from anomaly_api.artifacts import MODEL_FILE, ArtifactError, ArtifactNotFoundError
from anomaly_api.config import Settings
from anomaly_api.service.dataplane import DataPlane
from anomaly_api.service.errors import ModelNotFoundError, ModelNotReadyError
from anomaly_api.service.fleet_metrics import FleetMetrics
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.reloader import ModelReloader
from anomaly_api.service.runtime import ServiceRuntime, freeze_long_lived
from anomaly_api.service.streamplane import StreamPlane
from anomaly_api.service.streams import StreamStore, model_stream_store

__all__ = ["SERVING_BYTES", "ModelFleet", "PlaneFactory", "ServedModel"]

_log = logging.getLogger(__name__)

PlaneFactory = Callable[[ServiceRuntime, str], tuple[DataPlane, StreamPlane]]
"""Builds a model's data and stream planes over its runtime (the name is for its hooks)."""

Key = tuple[str, str | None]
"""A model name and a pinned version (None: whatever ``production`` names)."""


@dataclass(eq=False)
class ServedModel:
    """One loaded model (or pinned version) and the machinery serving it."""

    name: str
    runtime: ServiceRuntime
    dataplane: DataPlane
    streamplane: StreamPlane
    size_bytes: int = 0
    leases: int = 0
    loaded_at: float = field(default_factory=time.time)

    @property
    def predictor(self) -> Predictor:
        """The model's predictor (``ModelNotReadyError`` when ``default`` has none)."""
        return self.runtime.require_predictor()


class ModelFleet:
    """The named models of one process: ``default`` plus those loaded on demand."""

    def __init__(
        self,
        settings: Settings,
        default: ServedModel,
        build_planes: PlaneFactory,
        *,
        reloader: ModelReloader | None = None,
        metrics: FleetMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.default = default
        self.budget_bytes = int(settings.model_memory_mb * 2**20)
        self._build_planes = build_planes
        self._reloader = reloader
        self._metrics = metrics
        self._resident: OrderedDict[Key, ServedModel] = OrderedDict()
        self._resident_bytes = 0
        """The sum of ``size_bytes`` over ``_resident``, kept as models come and go: every
        request's ``release`` checks the budget, which must not cost a pass over the fleet."""
        self._loading: dict[Key, asyncio.Future[ServedModel]] = {}
        self._stores: dict[str, StreamStore] = {}
        self.listing = registry.RegistryListing(settings.artifacts_dir)
        """Every registered model's aliases (blocking: call it in a worker thread)."""

    # ------------------------------------------------------------------ leases
    @asynccontextmanager
    async def lease(self, name: str, version: str | None = None) -> AsyncIterator[ServedModel]:
        """``name`` (at ``version``, else its production version), loaded if need be and
        held loaded until the block ends."""
        served = await self.acquire(name, version)
        try:
            yield served
        finally:
            self.release(served)

    async def acquire(self, name: str, version: str | None = None) -> ServedModel:
        """``lease`` without the block: pair every call with ``release``."""
        if name == registry.DEFAULT_MODEL and version is None:
            self.default.leases += 1
            return self.default
        key = (checked_name(name), version)
        served = self._resident.get(key)
        if served is None:
            pending = self._loading.get(key)
            if pending is None:
                pending = asyncio.get_running_loop().create_task(self._load(key))
                self._loading[key] = pending
            served = await asyncio.shield(pending)
        else:
            self._resident.move_to_end(key)
        served.leases += 1
        return served

    def release(self, served: ServedModel) -> None:
        """End one lease; an idle model past the budget may be unloaded now."""
        served.leases -= 1
        if served is not self.default:
            self._evict()

    # ------------------------------------------------------------------ loading
    async def _load(self, key: Key) -> ServedModel:
        name, version = key
        try:
            store = self._stores.get(name)
            if store is None:  # not ``or``: an empty store is falsy (it has a ``len``)
                store = model_stream_store(self.default.runtime.streams, name)
            runtime, size = await asyncio.to_thread(self._load_runtime, name, version, store)
            # Kept only once the model loaded (unknown names leave nothing behind), and one
            # per model whichever of its versions loaded first.
            runtime.streams = self._stores.setdefault(name, store)
            served = ServedModel(name, runtime, *self._build_planes(runtime, name))
            served.size_bytes = size
        except BaseException:
            if self._metrics is not None:
                self._metrics.observe_load(name, ok=False)
            raise
        finally:
            self._loading.pop(key, None)
        if self._metrics is not None:
            self._metrics.observe_load(name, ok=True)
        self._admit(key, served)
        served.leases += 1  # held while the budget is enforced: never unloads itself
        self._evict()
        served.leases -= 1
        freeze_long_lived(1)  # as the start-up objects are: else collections walk every model
        _log.info(
            "model %s loaded (version %s, %d bytes)",
            name,
            served.predictor.version,
            served.size_bytes,
            extra={"model": name, "model_version": served.predictor.version},
        )
        return served

    def _load_runtime(
        self, name: str, version: str | None, store: StreamStore
    ) -> tuple[ServiceRuntime, int]:
        """Resolve and load ``name``; its runtime and size (blocking: runs in a worker thread)."""
        root = self.settings.artifacts_dir
        try:
            target = version or registry.resolve_alias(root, name, registry.PRODUCTION)
        except ArtifactNotFoundError as exc:
            raise ModelNotFoundError(str(exc)) from None
        settings = self.settings.model_copy(
            update={
                "artifacts_dir": registry.model_dir(root, name),
                "model_version": target,
                "cache_prefix": f"{self.settings.cache_prefix}m/{name}/",
            }
        )
        runtime = ServiceRuntime(settings, self.default.runtime.cache, store)
        try:
            runtime.predictor = runtime.build_predictor(target)
        except ArtifactNotFoundError as exc:
            raise ModelNotFoundError(f"model {name!r}: {exc}") from None
        except (ArtifactError, ValueError, OSError) as exc:
            raise ModelNotReadyError(f"model {name!r} could not be loaded ({exc})") from None
        return runtime, _model_bytes(runtime)

    def _evict(self) -> None:
        """Unload the least recently used idle named models while over the budget."""
        while self.resident_bytes() > self.budget_bytes:
            idle = next((k for k, s in self._resident.items() if s.leases <= 0), None)
            if idle is None:
                break  # everything left is in use: over budget until a lease ends
            gone = self._resident[idle]
            self._drop(idle)
            if self._metrics is not None:
                self._metrics.observe_eviction(gone.name)
            _log.info("model %s unloaded (memory budget)", gone.name, extra={"model": gone.name})
        if self._metrics is not None:
            self._metrics.set_resident(len(self._resident), self.resident_bytes())

    def _admit(self, key: Key, served: ServedModel) -> None:
        self._drop(key)
        self._resident[key] = served
        self._resident_bytes += served.size_bytes

    def _drop(self, key: Key) -> None:
        gone = self._resident.pop(key, None)
        if gone is not None:
            self._resident_bytes -= gone.size_bytes

    def resident_bytes(self) -> int:
        """Counted bytes (``_model_bytes``) of the named models loaded now."""
        return self._resident_bytes

    def loaded_versions(self) -> dict[str, list[str]]:
        """The versions loaded now, by model name (one pass, however many are asked about)."""
        out: dict[str, list[str]] = {}
        predictor = self.default.runtime.predictor
        if predictor is not None:
            out[registry.DEFAULT_MODEL] = [predictor.version]
        for (name, _), served in self._resident.items():
            out.setdefault(name, []).append(served.predictor.version)
        return out

    def loaded(self, name: str) -> list[str]:
        """The versions of ``name`` loaded now."""
        return self.loaded_versions().get(name, [])

    # ------------------------------------------------------------------ alias moves
    async def follow_aliases(self, name: str) -> None:
        """``name``'s production alias moved (here or on another replica): serve the new
        version from the next request on. Requests in flight finish on the old one."""
        if name == registry.DEFAULT_MODEL:
            if self._reloader is not None:
                version = await asyncio.to_thread(
                    registry.resolve_alias, self.settings.artifacts_dir, name
                )
                await self._reloader.reload(version)
            return
        self._drop((name, None))
        if self._metrics is not None:
            self._metrics.set_resident(len(self._resident), self.resident_bytes())

    def forget_version(self, name: str, version: str) -> None:
        """A version was deleted: drop it if it was loaded pinned."""
        self._drop((name, version))


def checked_name(name: str) -> str:
    """``name``, or ``ModelNotFoundError`` for a name no model can have."""
    try:
        return registry.validate_model_name(name)
    except ValueError:
        raise ModelNotFoundError(f"unknown model {name[:80]!r}") from None


SERVING_BYTES = 768 * 1024
"""What serving one loaded model adds besides its arrays: its runtime, planes and predictor
and the allocator's slack (measured in a fleet of small models: the process grew ~2.77 MB a
loaded model where the file and the scorer's arrays account for ~2.0 MB)."""


def _model_bytes(runtime: ServiceRuntime) -> int:
    """What the loaded version holds, roughly: its model file's size (the unpickled model
    takes about as much), the arrays its compiled scorer builds beside the model and
    ``SERVING_BYTES``."""
    predictor = runtime.require_predictor()
    path = runtime.settings.artifacts_dir / predictor.version / MODEL_FILE
    try:
        size = path.stat().st_size + SERVING_BYTES
    except OSError:
        size = SERVING_BYTES
    scorer, model = predictor.scorer, predictor.time_aware or predictor.model
    if scorer is model:
        return size
    seen = {id(scorer)}  # a time-aware model holds its scorer: counted below, as the scorer's
    _array_bytes(model, seen)
    seen.discard(id(scorer))
    return size + _array_bytes(scorer, seen)


_WALKED = ("anomaly_api.", "sklearn.")
"""Whose objects ``_array_bytes`` looks into (nothing shared: no caches, no clients)."""


def _array_bytes(root: object, seen: set[int]) -> int:
    """Bytes of the NumPy arrays reachable from ``root`` (through containers and the
    attributes of the model's and the scorer's own objects) that are not in ``seen``;
    a view counts as its base. Adds what it visits to ``seen``."""
    total, stack = 0, [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            if item.base is None:
                total += item.nbytes
            else:
                stack.append(item.base)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif type(item).__module__.startswith(_WALKED) and hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return total
