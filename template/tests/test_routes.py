"""Every route module's router is included in the application (app/api/router.py)."""

import importlib
import pkgutil

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import app.api.routes as routes_package


def test_every_route_of_every_route_module_is_served(client: TestClient) -> None:
    # A module added under app/api/routes/ and forgotten in app/api/router.py answers 404 in production.
    names = [m.name for m in pkgutil.iter_modules(routes_package.__path__)]
    modules = [importlib.import_module(f"app.api.routes.{name}") for name in names]
    declared = {
        (route.path, method)
        for module in modules
        if isinstance(getattr(module, "router", None), APIRouter)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert declared, "no route module found"
    for path, method in sorted(declared):
        response = client.request(method, path)
        assert response.status_code not in (404, 405), f"{method} {path}: {response.status_code}"
