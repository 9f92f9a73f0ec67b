"""Container health check: is the exporter's HTTP server answering on /-/healthy?

Run by the image's HEALTHCHECK with the image's Python, standard library only. Exit 0 when
the server answers, 1 otherwise. Settings (environment):

  HEALTHCHECK_URL   default http://127.0.0.1:9786/-/healthy; change it when you change
                    --web.listen-address or serve TLS (https://127.0.0.1:PORT/-/healthy).

With TLS the certificate is not verified (the check talks to its own process over loopback,
and the certificate names a public host). With basic auth on (--web.config.file), a 401
still proves the server is up, so it counts as healthy; no password is needed here.
"""

import os
import ssl
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:9786/-/healthy"


def main() -> int:
    url = os.environ.get("HEALTHCHECK_URL") or DEFAULT_URL
    # Our own listener on loopback, whose certificate names the service, not 127.0.0.1:
    # whether it answers is the question here, not who it is.
    context = ssl._create_unverified_context() if url.startswith("https:") else None  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as reply:  # noqa: S310 - http(s) by config
            ok = reply.status == 200
    except urllib.error.HTTPError as exc:
        ok = exc.code == 401
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
