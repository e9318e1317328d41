"""``python -m splineforecast.api [--host H] [--port P]``: serve the API with uvicorn.

Fail closed: an unsafe environment (prod without ``SPLINE_API_TOKEN``, a bad ``SPLINE_DEV_MODE``,
dev mode on a non-loopback host, a wildcard origin) exits 2 with a message before anything binds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from splineforecast.api.settings import LOOPBACK_HOSTS, Settings, SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splineforecast.api", description=__doc__)
    parser.add_argument("--host", help="bind address (default $SPLINE_API_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default $SPLINE_API_PORT or 8000)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        host = args.host or settings.host
        port = settings.port if args.port is None else args.port
        if settings.dev_mode and host not in LOOPBACK_HOSTS:
            raise SettingsError(
                f"dev mode (SPLINE_DEV_MODE=1) binds to loopback only, not {host!r}; "
                "use --host 127.0.0.1, or SPLINE_DEV_MODE=0 with SPLINE_API_TOKEN"
            )
        from splineforecast.api.app import create_app

        app = create_app(settings)
    except SettingsError as exc:
        print(f"splineforecast.api: refusing to start: {exc}", file=sys.stderr, flush=True)
        return 2
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=args.log_level, server_header=False, proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
