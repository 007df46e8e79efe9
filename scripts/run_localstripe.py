"""Run localstripe bound to loopback only, with its store file kept in the working directory.

localstripe's own ``localstripe`` command binds ``::`` (every interface) and always pickles its
store to the hard-coded ``/tmp/localstripe.pickle``, which parallel runs would share and clobber.
This runner reuses localstripe's module-level aiohttp ``app`` but listens on 127.0.0.1 only and
redirects the pickle to ``localstripe.pickle`` in the current directory, so a fresh directory means
a fresh store.

Usage: ``python scripts/run_localstripe.py PORT`` (used by `make run` and by the test suite).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources
from localstripe.server import app
from localstripe_browser import install as install_browser
from localstripe_connect import install as install_connect
from localstripe_redelivery import install as install_redelivery

STORE_FILE_NAME = "localstripe.pickle"


def _redirect_store(path: Path) -> None:
    """Make localstripe's Store read/write ``path`` instead of the shared /tmp file."""

    def try_load_from_disk(self: resources.Store) -> None:
        try:
            with path.open("rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        self.clear()
        self.update(old)

    def dump_to_disk(self: resources.Store) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    resources.Store.try_load_from_disk = try_load_from_disk  # type: ignore[method-assign]
    resources.Store.dump_to_disk = dump_to_disk  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    args = parser.parse_args(argv)

    store_path = Path.cwd() / STORE_FILE_NAME
    _redirect_store(store_path)
    # Reload whatever a previous run in this same directory left (nothing, in a fresh temp dir).
    resources.store.try_load_from_disk()
    install_connect(app)
    install_redelivery()
    install_browser(app)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG)
    print(f"localstripe listening on http://{args.host}:{args.port} (store: {store_path})", flush=True)
    web.run_app(
        app, host=args.host, port=args.port, print=None, access_log=logging.getLogger("aiohttp.access")
    )


if __name__ == "__main__":
    main()
