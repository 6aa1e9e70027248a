"""The models the gateway serves: one start per model however many requests wait for it, a
hold on each service while the gateway uses it, its release ``ttl`` seconds after the model's
last request, and a queue when ``max_models`` services are running: a request for another
model waits until one is idle, never evicting a model that is serving. In adapter mode the
adapters of one base share their base's service: they take one place, and go together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sage_lsp.core.errors import InvalidInput, SageError
from sage_lsp.services.manager import ServiceHandle, ServiceManager
from sage_lsp.services.registry import ServiceEntry
from sage_lsp.services.store import check_name

STOP_WAIT_SECONDS = 12.0
"""How long closing the gateway waits for a service it stops (SIGTERM: out within 20 s)."""


class UnknownModel(InvalidInput):
    """No finetuned model of the store and no running service has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"The model `{name}` does not exist.")


class ModelPool:
    """Ensures models' services through one :class:`ServiceManager` (the gateway's holder)."""

    def __init__(self, manager: ServiceManager, ttl: float, port: int, max_models: int = 0) -> None:
        self.manager = manager
        self.ttl = ttl
        """Seconds after a model's last request before its hold is released; 0: kept."""
        self.port = port
        """The port asked for a new service (the manager takes the next free one)."""
        self._starts: dict[str, asyncio.Task[ServiceHandle]] = {}
        self._handles: dict[str, ServiceHandle] = {}
        self._busy: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.max_models = max_models
        """How many models may be held or starting at once; 0: no limit."""
        self._room = asyncio.Condition()
        """Held while deciding whether a model may start; notified when a model is idle or
        let go, so that queued requests look again."""
        self._notifying: set[asyncio.Future[None]] = set()
        """Wake-ups under way (kept until done: the loop holds tasks only weakly)."""
        self._last_used: dict[str, float] = {}
        self._failures: dict[str, str] = {}
        self.launches = 0
        """How many starts (ensure calls) the pool made: joined requests add none."""

    def store_models(self) -> list[str]:
        """Names of the store's finetuned models."""
        return [model.name for model in self.manager.store.list()]

    def running(self) -> list[ServiceEntry]:
        """Live services of the registry."""
        return self.manager.services()

    def service_of(self, name: str) -> str:
        """The registry name of the service that serves model ``name``: in adapter mode an
        adapter's is its base's LoRA service, else the model's own."""
        try:
            return self.manager.parent(name) or name
        except SageError:  # not a model of the store: a running service of its own name
            return name

    def _occupied(self) -> dict[str, list[str]]:
        """The services the gateway holds or is starting, each with its models."""
        services: dict[str, list[str]] = {}
        for name in sorted(set(self._handles) | set(self._starts)):
            services.setdefault(self.service_of(name), []).append(name)
        return services

    def _idlest(self, services: dict[str, list[str]]) -> list[str] | None:
        """The models of the held service unused the longest, among the services none of
        whose models has a request in flight or waiting; None if every one is busy."""
        idle = [
            models for models in services.values()
            if not any(n in self._busy or n in self._starts for n in models)
        ]  # fmt: skip
        return min(
            idle, key=lambda models: max(self._last_used.get(n, 0.0) for n in models), default=None
        )

    async def _ensure(self, name: str) -> asyncio.Task[ServiceHandle]:
        """The start of ``name``: the one under way, else a new one once there is room (an
        idle service is released to make it; with none idle, this waits)."""
        if not self.max_models:
            return self._starts.get(name) or self._begin(name)
        async with self._room:
            while name not in self._starts:
                occupied = self._occupied()
                if self.service_of(name) in occupied or len(occupied) < self.max_models:
                    return self._begin(name)
                victims = self._idlest(occupied)
                if victims is None:
                    await self._room.wait()
                else:
                    for victim in victims:
                        await self._let_go(victim)
            return self._starts[name]

    def _begin(self, name: str) -> asyncio.Task[ServiceHandle]:
        self.launches += 1
        task = self._starts[name] = asyncio.create_task(self._start(name))
        return task

    def _wake(self) -> None:
        """Tell queued requests to look for room again, without waiting: the decision under
        way may hold the room for a release's seconds, and no request waits on that."""
        if self.max_models:
            task = asyncio.ensure_future(self._notify())
            self._notifying.add(task)
            task.add_done_callback(self._notifying.discard)

    async def _notify(self) -> None:
        async with self._room:
            self._room.notify_all()

    async def _start(self, name: str) -> ServiceHandle:
        """Ensure ``name``'s service; a failed start gives its hold up at once. Once started, a
        model nobody waits for any more counts as idle."""
        try:
            handle = await self.manager.ensure_finetuned(name, self.port)
        except Exception as exc:
            self._failures[name] = str(exc)
            self._starts.pop(name, None)
            await asyncio.to_thread(self.manager.release_one, name, stop=True, wait=0)
            self._wake()
            raise
        self._starts.pop(name, None)
        self._failures.pop(name, None)
        self._handles[name] = handle
        if name not in self._busy:
            self._idle(name)
        return handle

    async def _handle(self, name: str) -> ServiceHandle:
        """A handle on ``name``'s ready service: the one held, else joined or started."""
        held = self._handles.get(name)
        if held is not None:  # held.name: the service (an adapter's is its base's)
            # one small file, read on the loop: a thread's hop would cost each request more
            entry = self.manager.registry.read(held.name)
            if entry is not None and entry.state == "ready" and entry.port == held.port:
                return held
            self._handles.pop(name, None)
        if name not in self.store_models():
            try:
                check_name(name)  # before it names a registry file
            except InvalidInput:
                raise UnknownModel(name) from None
            entry = await asyncio.to_thread(self.manager.registry.read, name)
            if entry is not None and entry.state == "ready" and entry.processes_alive():
                # a running service that is not a finetuned model: relayed, not held
                return ServiceHandle(
                    name, entry.served_model_name, entry.port, entry.api_key, entry
                )
            raise UnknownModel(name)
        return await asyncio.shield(await self._ensure(name))

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[ServiceHandle]:
        """Hold ``name``'s service for one request; its TTL counts from the end of the last."""
        self._busy[name] = self._busy.get(name, 0) + 1
        self._cancel_timer(name)
        try:
            handle = await self._handle(name)
            async with self.manager.in_use(handle):  # an adapter load waits for the request
                yield handle
        finally:
            self._busy[name] -= 1
            if self._busy[name] == 0:
                del self._busy[name]
                self._last_used[name] = asyncio.get_running_loop().time()
                self._idle(name)
                self._wake()

    async def start(self, name: str) -> ServiceHandle:
        """Start (or join) ``name``'s service and hold it as a request would; its TTL counts
        from now."""
        async with self.use(name) as handle:
            return handle

    async def stop(self, name: str) -> bool:
        """Stop ``name``'s service now, whoever holds it (``sage services stop``): for an
        adapter, its base's LoRA service with every adapter on it. Requests that wait for its
        start get its failure. Returns whether a service was stopped."""
        service = self.service_of(name)
        for model in [n for n in set(self._handles) | {name} if self.service_of(n) == service]:
            self._cancel_timer(model)
            self._handles.pop(model, None)
            self.manager.held.discard(model)
        stopped = await asyncio.to_thread(self.manager.stop, service, STOP_WAIT_SECONDS)
        self.manager.held.discard(service)
        self._wake()
        return stopped

    def state(self, name: str) -> str:
        """``starting``, ``ready``, ``stopping``, ``failed`` (its last start failed) or
        ``stopped`` (an adapter whose base's service runs without it is stopped)."""
        if name in self._starts:
            return "starting"
        service = self.service_of(name)
        entry = self.manager.registry.read(service)
        loaded = entry is not None and (service == name or name in entry.adapters)
        if entry is not None and loaded and entry.processes_alive():
            return entry.state
        return "failed" if name in self._failures else "stopped"

    def failure(self, name: str) -> str | None:
        """Why the last start of ``name`` failed, if it did (a later success forgets it)."""
        return self._failures.get(name)

    def _cancel_timer(self, name: str) -> None:
        """Stop counting ``name``'s TTL."""
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _idle(self, name: str) -> None:
        """Count the TTL of ``name`` from now (its last request ended)."""
        self._cancel_timer(name)
        if self.ttl > 0 and name in self.manager.held:
            loop = asyncio.get_running_loop()
            self._timers[name] = loop.call_later(
                self.ttl, lambda: asyncio.ensure_future(self._expire(name))
            )

    async def _expire(self, name: str) -> None:
        self._timers.pop(name, None)
        if name in self._busy or name in self._starts:
            return  # a request came meanwhile, or a start whose end counts as idle again
        if not self.max_models:
            await self._let_go(name)  # no queue: nothing to decide, nobody waits for this
            return
        async with self._room:
            await self._let_go(name)
            self._room.notify_all()

    async def _let_go(self, name: str) -> None:
        """Release the gateway's hold on idle ``name``: its service stops unless another
        session holds it."""
        self._cancel_timer(name)
        self._handles.pop(name, None)
        await asyncio.to_thread(self.manager.release_one, name, stop=True, wait=STOP_WAIT_SECONDS)

    async def close(self) -> None:
        """Stop waiting for starts and release every hold: a service nobody else holds is
        stopped now."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        starts = list(self._starts.values())
        for task in starts:
            task.cancel()
        await asyncio.gather(*starts, return_exceptions=True)
        self._handles.clear()
        names = sorted(self.manager.held)
        await asyncio.gather(
            *(
                asyncio.to_thread(self.manager.release_one, n, stop=True, wait=STOP_WAIT_SECONDS)
                for n in names
            )
        )
