"""gunicorn's logger with secrets masked, named by `logger_class` in gunicorn.conf.py.

Kept apart from `request_log` so the app and the workers never import gunicorn.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from gunicorn.glogging import Logger

from marketplace.core.request_log import SecretMaskingFilter, mask_secrets


class GunicornLogger(Logger):
    """gunicorn's logger with secrets masked in the access log's atoms and in its error log."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(existing, SecretMaskingFilter) for existing in log.filters):
                log.addFilter(SecretMaskingFilter())

    # The stub types the atoms as a TypedDict; masking keeps its keys, which a comprehension cannot show.
    def atoms(  # type: ignore[override]
        self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: Any
    ) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: mask_secrets(value) if isinstance(value, str) else value for key, value in atoms.items()}
