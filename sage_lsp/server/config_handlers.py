"""Configuration from ``initializationOptions``, ``workspace/didChangeConfiguration`` and
``workspace/configuration`` (section ``sage``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from sage_lsp.config import apply_valid

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer

log = logging.getLogger(__name__)

SECTION = "sage"


def _section(raw: Any) -> dict[str, Any] | None:
    """The ``sage`` settings in what a client sent: ``{"sage": {...}}`` or the section itself."""
    if isinstance(raw, dict) and isinstance(raw.get(SECTION), dict):
        section: dict[str, Any] = raw[SECTION]
        return section
    return raw if isinstance(raw, dict) and raw else None


class ConfigHandlers:
    """The configuration and start-up handlers of one server."""

    def __init__(self, server: SageServer) -> None:
        self.server = server
        self.session = server.session
        self._can_pull = False
        self.base = server.session.settings
        """The settings the session started with, ``initializationOptions`` included: what a
        pushed or pulled ``sage`` section is applied over."""

    def register(self) -> None:
        """Register every handler of the group with the server."""
        self.server.route(types.INITIALIZE, self.initialize)
        self.server.route(types.INITIALIZED, self.initialized)
        self.server.route(types.WORKSPACE_DID_CHANGE_CONFIGURATION, self.did_change)

    def initialize(self, params: types.InitializeParams) -> None:
        """Take ``initializationOptions``, note what the client supports, watch its process."""
        workspace = params.capabilities.workspace
        self._can_pull = bool(workspace and workspace.configuration)
        options = _section(params.initialization_options)
        if options is not None:
            settings, errors = apply_valid(self.session.settings, options, "initializationOptions")
            self.session.settings = settings
            self.server.show_errors(errors)
            self.server.set_log_level(settings.log_level)
        self.base = self.session.settings
        if params.process_id is not None:
            self.server.watch_editor(params.process_id)

    async def initialized(self, params: types.InitializedParams) -> None:
        """Pull the ``sage`` section when the client supports ``workspace/configuration``."""
        try:
            if self._can_pull:
                await self.pull()
        finally:
            self.server.mark_configured()

    async def did_change(self, params: types.DidChangeConfigurationParams) -> None:
        """Apply pushed settings, or pull them when the client only signals a change."""
        section = _section(params.settings)
        if section is not None:
            await self.apply(section, "workspace/didChangeConfiguration")
        elif self._can_pull:
            await self.pull()

    async def pull(self) -> None:
        """Ask the client for the ``sage`` section and apply it."""
        request = types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        try:
            result = await self.server.workspace_configuration_async(request)
        except Exception as exc:  # a client that fails the request must not break the session
            log.warning("workspace/configuration failed: %s", exc)
            return
        section = _section(result[0]) if result else None
        if section is not None:
            await self.apply(section, "workspace/configuration")

    async def apply(self, section: dict[str, Any], source: str) -> None:
        """Take ``section`` as the client's whole ``sage`` configuration.

        It is applied over the start-up settings, so a key the client no longer sends goes back
        to its start-up value (the user unset it). Each bad key is reported and keeps its
        current value.
        """
        settings, errors = apply_valid(self.base, section, source, current=self.session.settings)
        self.server.show_errors(errors)
        self.server.set_log_level(settings.log_level)
        await self.session.reconfigure(settings)
