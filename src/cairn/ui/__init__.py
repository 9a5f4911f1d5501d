"""The web UI: server-rendered pages over the service, for people with a browser.

A sibling of ``cairn.api`` (neither imports the other): it calls the same use cases with
the signed-in caller, so what a page shows is exactly what the API would answer that
caller. ``router()`` is what the app includes, at ``/``; ``web`` is the request plumbing
(sign-in cookies, CSRF and origin checks, security headers, error pages), ``render`` the
templates and their filters, ``pages`` the routes (``deployment_pages`` adds the
deployments' to the same router).
"""

from __future__ import annotations

from cairn.ui import deployment_pages as deployment_pages  # its routes, on the router
from cairn.ui.pages import router as router
