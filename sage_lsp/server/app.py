"""The sage-lsp language server: pygls with protocol v1's methods and one way to end."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from sage_lsp import __version__, protocol
from sage_lsp.config import Settings
from sage_lsp.server.config_handlers import ConfigHandlers
from sage_lsp.server.editor_watch import ProcessWatch
from sage_lsp.server.logs import EditorLogHandler
from sage_lsp.server.routes import COMMANDS, FEATURES, ROUTES
from sage_lsp.server.session import Session
from sage_lsp.server.transport import Writer

log = logging.getLogger(__name__)

CONFIGURED_WAIT_SECONDS = 5.0
"""How long a request waits for the client's configuration after ``initialized``."""


class SageProtocol(LanguageServerProtocol):
    """pygls' protocol with protocol v1 in the capabilities and an exit that ends cleanly."""

    _server: SageServer
    shutdown_requested = False
    """Set as soon as ``shutdown`` arrives."""

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        """Initialize as pygls does, then list the ``sage/*`` methods under ``experimental``."""
        result: types.InitializeResult = yield from super().lsp_initialize(params)
        result.capabilities.experimental = {
            "sage": {"version": protocol.PROTOCOL_VERSION, "methods": list(protocol.METHODS)}
        }
        return result

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(  # type: ignore[override]  # async, not a generator
        self, params: types.ExecuteCommandParams
    ) -> Any:
        """Run a command of :data:`COMMANDS` with the arguments as sent, as a task of its own,
        which ``$/cancelRequest`` cancels (pygls runs a command as a step of a generator,
        which a cancel does not reach)."""
        handler = self.fm.commands.get(params.command)
        if handler is None:
            raise JsonRpcInvalidParams(f"no command {params.command!r}")
        return await handler(*(params.arguments or []))

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """Note the request at once (an ``exit`` may follow before cleanup ends), then shut
        down as pygls does, which runs the session's cleanup first."""
        self.shutdown_requested = True
        yield from super().lsp_shutdown(*args)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """End the session: exit code 0 after ``shutdown``, 1 without it (as the spec says)."""
        self._server.request_exit(0 if self.shutdown_requested else 1)
        yield from ()


class EditorProgress:
    """Work-done progress (``window/workDoneProgress/create`` and ``$/progress``) for long
    preparations, when the client supports it; otherwise nothing."""

    def __init__(self, server: SageServer) -> None:
        self.server = server
        self.token: str | None = None

    async def begin(self, title: str) -> None:
        """Create a progress token and show ``title``."""
        window = self.server.client_capabilities.window
        if not (window and window.work_done_progress):
            return
        token = f"sage-{uuid.uuid4().hex[:8]}"
        try:
            await asyncio.wait_for(self.server.work_done_progress.create_async(token), 5)
        except Exception as exc:  # a client that refuses just gets no progress
            log.info("no work-done progress: %s", exc)
            return
        self.token = token
        self.server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title))

    def report(self, message: str) -> None:
        """Update the shown progress."""
        if self.token is not None:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message)
            )

    def end(self, message: str) -> None:
        """Close the shown progress."""
        if self.token is not None:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message)
            )
            self.token = None


class SageServer(LanguageServer):
    """The language server: a :class:`Session`, the configuration handlers, and every route
    and feature of :mod:`sage_lsp.server.routes`."""

    protocol: SageProtocol

    def __init__(self, settings: Settings, startup_errors: list[str] | None = None) -> None:
        super().__init__(
            "sage-lsp",
            __version__,
            protocol_cls=SageProtocol,
            converter_factory=get_converter,
        )
        self.session = Session(settings, self.send_notification, EditorProgress(self))
        self.writer: Writer | None = None
        self.exit_code: int | None = None
        self._startup_errors = list(startup_errors or [])
        self._stop = asyncio.Event()
        self._configured = asyncio.Event()
        self._watchers: list[ProcessWatch] = []
        self.log_handler = EditorLogHandler(self.send_notification, settings.log_level)
        ConfigHandlers(self).register()
        for route in ROUTES:
            self.route(route.method, partial(route.dispatch, self))
        for feature in FEATURES:
            self.route(feature.method, partial(feature.dispatch, self), feature.options)
        for command in COMMANDS:
            self.command(command.name)(command.bound(self))
        self.route(types.SHUTDOWN, self._on_shutdown)

    def route(self, method: str, handler: Callable[[Any], Any], options: Any = None) -> None:
        """Register ``handler`` (a bound method, sync or async) for ``method``, with the
        feature's ``options`` (e.g. completion trigger characters) when it has some."""
        if inspect.iscoroutinefunction(handler):

            async def call_async(params: Any) -> Any:
                return await handler(params)

            self.feature(method, options)(call_async)
        else:

            def call(params: Any) -> Any:
                return handler(params)

            self.feature(method, options)(call)

    # --- output ------------------------------------------------------------------------------

    def send_notification(self, method: str, params: Any) -> None:
        """Send a notification whose params are already JSON-ready."""
        self.protocol._send_data({"jsonrpc": "2.0", "method": method, "params": params})

    def backlog(self) -> int:
        """Bytes of output the client has not read yet."""
        return self.writer.backlog if self.writer is not None else 0

    def show_errors(self, errors: list[str]) -> None:
        """Show each message to the user as an error (``window/showMessage``)."""
        for message in errors:
            log.warning("%s", message)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=f"sage: {message}")
            )

    def set_log_level(self, level: str) -> None:
        """Change the lowest level of log lines sent to the editor."""
        self.log_handler.set_level_name(level)

    # --- start-up ----------------------------------------------------------------------------

    def mark_configured(self) -> None:
        """The client's configuration has been applied; start-up errors can now be shown."""
        self.show_errors(self._startup_errors)
        self._startup_errors.clear()
        self._configured.set()

    async def configured(self) -> None:
        """Wait (briefly) until the client's configuration has been applied."""
        try:
            await asyncio.wait_for(self._configured.wait(), CONFIGURED_WAIT_SECONDS)
        except TimeoutError:
            log.warning("no 'initialized' from the client; going on with what is configured")
            self._configured.set()

    def watch_editor(self, pid: int) -> None:
        """End the session when the editor process ``pid`` goes away."""
        self._watchers.append(ProcessWatch(pid, lambda: self.request_exit(0)))

    # --- the end -----------------------------------------------------------------------------

    async def _on_shutdown(self, params: Any) -> None:
        await self.session.close()

    def request_exit(self, code: int) -> None:
        """Ask the main loop to clean up and end the process with ``code``."""
        if self.exit_code is None:
            self.exit_code = code
        self._stop.set()

    async def stopped(self) -> None:
        """Wait until something asked the server to end."""
        await self._stop.wait()

    async def close(self) -> None:
        """Run the cleanup path and stop watching the editor."""
        for watcher in self._watchers:
            watcher.cancel()
        await self.session.close()
